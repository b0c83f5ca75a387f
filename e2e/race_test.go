//go:build race

package e2e

// raceEnabled builds the server with the race detector when the tests
// themselves run with it (make test does), so a data race in the server
// fails the test that provoked it.
func init() { raceEnabled = true }
