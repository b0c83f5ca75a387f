//go:build tools

// Package vane pins, in this file only, the chosen dependencies that no package
// imports yet, so that go mod tidy keeps them in go.mod.
package vane

import (
	_ "github.com/adhocore/gronx"
	_ "github.com/anishathalye/porcupine"
	_ "github.com/bytedance/sonic"
	_ "github.com/dop251/goja"
	_ "github.com/fasthttp/router"
	_ "github.com/google/uuid"
	_ "github.com/hashicorp/raft"
	_ "github.com/hashicorp/raft-boltdb/v2"
	_ "github.com/tetratelabs/wazero"
	_ "github.com/valyala/fasthttp"
	_ "go.etcd.io/bbolt"
)
