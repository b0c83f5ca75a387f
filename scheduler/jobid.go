package scheduler

import (
	"strconv"
	"time"

	"github.com/google/uuid"

	"vane"
)

// jobIDSpace is the UUID namespace of scheduled job ids (a fixed random UUID).
var jobIDSpace = uuid.MustParse("5b0d2f4e-8c1a-4f57-9a3e-7d6c1b2a9e40")

// JobID is the id of the job a schedule pushes for one tick: a name-based
// (SHA-1, version 5) UUID of the workspace, the schedule's path, its version
// (the store's edited_at, the same on every node) and the tick. Every leader,
// now or after a change of leader, derives the same id for the same tick, so
// the store's job-id uniqueness makes a second push of it a no-op; an edit of
// the schedule gives its ticks new ids, so the next tick under the new
// definition is not mistaken for the withdrawn job of the old one.
func JobID(ws, path string, version int64, tick time.Time) string {
	name := ws + "\x00" + path + "\x00" + strconv.FormatInt(version, 10) + "\x00" + tick.UTC().Format(time.RFC3339Nano)
	return uuid.NewSHA1(jobIDSpace, []byte(name)).String()
}

// Version is the version of a schedule that JobID uses: its edited_at, which
// every write of the schedule sets from the command's replicated timestamp.
func Version(sc *vane.Schedule) int64 { return sc.EditedAt.UnixNano() }
