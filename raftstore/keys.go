package raftstore

import (
	"bytes"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names of the FSM's bbolt file. Every key of a workspace-scoped bucket
// starts with "<workspace id>\x00", so the store can later be split by
// workspace. Instance-level buckets (meta, users, tokens, workspaces) are the
// only exception.
var (
	bucketMeta          = []byte("meta")            // applied index, instance secret
	bucketUsers         = []byte("users")           // email -> userRecord
	bucketTokens        = []byte("tokens")          // token hash -> tokenRecord
	bucketTokensByEmail = []byte("tokens_by_email") // email \x00 hash -> nil
	bucketWorkspaces    = []byte("workspaces")      // id -> workspaceRecord (incl. the wrapped data key)
	bucketMembers       = []byte("members")         // ws \x00 email -> vane.Member
	bucketMemberNames   = []byte("member_names")    // ws \x00 username -> email
	bucketScripts       = []byte("scripts")         // ws \x00 hash -> scriptRecord
	bucketScriptHeads   = []byte("script_heads")    // ws \x00 path -> hash of the newest version
	bucketScriptHist    = []byte("script_history")  // ws \x00 path \x00 seq -> hash
	bucketJobs          = []byte("jobs")            // ws \x00 id -> jobRecord (every state)
	bucketJobsBySeq     = []byte("jobs_by_seq")     // ws \x00 seq -> id
	bucketQueue         = []byte("queue")           // ws \x00 scheduled_for seq -> queueEntry (queued jobs only)
	bucketLeases        = []byte("leases")          // ws \x00 lease_expires id -> nil (running jobs only)
	bucketJobLogs       = []byte("job_logs")        // ws \x00 id \x00 seq -> log chunk
	bucketJobsDone      = []byte("jobs_done")       // ws \x00 completed_at id -> nil (completed jobs only; retention)
	bucketVariables     = []byte("variables")       // ws \x00 path -> variableRecord
	bucketResources     = []byte("resources")       // ws \x00 path -> vane.Resource
	bucketResourceTypes = []byte("resource_types")  // ws \x00 name -> vane.ResourceType
	bucketSchedules     = []byte("schedules")       // ws \x00 path -> vane.Schedule
	bucketGroups        = []byte("groups")          // ws \x00 name -> vane.Group
	bucketFolders       = []byte("folders")         // ws \x00 name -> vane.Folder
	bucketFlows         = []byte("flows")           // ws \x00 path -> vane.Flow (the newest version)
	bucketFlowVersions  = []byte("flow_versions")   // ws \x00 path \x00 version -> vane.Flow
	bucketAudit         = []byte("audit")           // ws \x00 seq -> vane.AuditEntry
	bucketClaimTurns    = []byte("claim_turns")     // ws -> time key of the last claim that gave it a job (fair share)
	bucketRunningFlows  = []byte("running_flows")   // ws \x00 id -> nil (flow jobs started and not ended)
	bucketFlowRaw       = []byte("flow_raw")        // ws \x00 id -> a flow job's raw flow (kept out of its record)
	bucketFlowStatus    = []byte("flow_status")     // ws \x00 id -> a flow job's status (kept out of its record)
	bucketInvites       = []byte("invites")         // ws \x00 email -> vane.Invite (pending)
	bucketBlobs         = []byte("blobs")           // ws \x00 sha256 hex -> bytes (see blobs.go)
)

// allBuckets lists every bucket; the FSM creates them on open and after restore.
var allBuckets = [][]byte{
	bucketMeta, bucketUsers, bucketTokens, bucketTokensByEmail, bucketWorkspaces,
	bucketMembers, bucketMemberNames, bucketScripts, bucketScriptHeads, bucketScriptHist,
	bucketJobs, bucketJobsBySeq, bucketQueue, bucketLeases, bucketJobLogs, bucketJobsDone,
	bucketVariables, bucketResources, bucketResourceTypes, bucketSchedules,
	bucketGroups, bucketFolders, bucketFlows, bucketFlowVersions, bucketAudit,
	bucketClaimTurns, bucketUsage, bucketRunningFlows, bucketFlowRaw, bucketFlowStatus,
	bucketInvites,
	bucketBlobs,
}

var (
	metaApplied = []byte("applied_index")
	metaSecret  = []byte("instance_secret")
	metaClock   = []byte("clock") // the latest command time applied (see applier.clock)
	// metaDoneIndex marks a state file whose bucketJobsDone is complete:
	// files written before that index existed get it built once on open
	// (backfillDoneIndex).
	metaDoneIndex = []byte("jobs_done_built")
)

const sep = 0

// key joins parts with a zero byte. Parts never contain a zero byte: names
// and paths are validated to a small alphabet first.
func key(parts ...string) []byte {
	n := len(parts)
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			b = append(b, sep)
		}
		b = append(b, p...)
	}
	return b
}

// prefix is key(parts...) followed by the separator: every key under it.
func prefix(parts ...string) []byte { return append(key(parts...), sep) }

// keyU64 is prefix(parts...) followed by big-endian n.
func keyU64(n uint64, parts ...string) []byte {
	return binary.BigEndian.AppendUint64(prefix(parts...), n)
}

// u64 encodes n big-endian so that byte order is numeric order.
func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// timeKey orders times; times before 1970 sort as 1970.
func timeKey(t time.Time) uint64 {
	n := t.UnixNano()
	if n < 0 {
		return 0
	}
	return uint64(n)
}

// queueKey is ws \x00 tag \x00 scheduled_for(8) seq(8): per tag, so a worker
// that serves some tags never scans past other tags' backlog.
func queueKey(ws, tag string, sched time.Time, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(keyU64(timeKey(sched), ws, tag), seq)
}

// leaseKey is ws \x00 lease_expires(8) id.
func leaseKey(ws string, exp time.Time, id string) []byte {
	return append(keyU64(timeKey(exp), ws), id...)
}

// doneKey is ws \x00 completed_at(8) id: completed jobs oldest first, so
// retention reads only the jobs it deletes.
func doneKey(ws string, completed time.Time, id string) []byte {
	return append(keyU64(timeKey(completed), ws), id...)
}

// scanPrefix calls fn for every key under p in order until fn returns false.
func scanPrefix(b *bolt.Bucket, p []byte, fn func(k, v []byte) bool) {
	c := b.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if !fn(k, v) {
			return
		}
	}
}

// scanPrefixReverse calls fn for every key under p in reverse order until fn returns false.
func scanPrefixReverse(b *bolt.Bucket, p []byte, fn func(k, v []byte) bool) {
	c := b.Cursor()
	end := append(append([]byte(nil), p...), 0xff)
	k, v := c.Seek(end)
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, p); k, v = c.Prev() {
		if !fn(k, v) {
			return
		}
	}
}
