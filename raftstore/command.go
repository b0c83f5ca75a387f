package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"vane"
)

// A log entry is an envelope of one or more commands:
//
//	version byte (envelopeVersion)
//	count   uvarint (1..maxCommandsPerEntry)
//	count times: type uint16 big-endian, length uvarint, JSON body
//
// Each command is its own Go type with a type code that is never reused: a
// command whose shape changes incompatibly gets a new code (a new Go type) and
// the decoder keeps the old one, so old logs and snapshots still replay.
const (
	envelopeVersion     = 1
	maxCommandsPerEntry = 4095     // seq numbers reserve 12 bits for the position in an entry
	maxCommandBytes     = 32 << 20 // one command's JSON body
)

// cmdType is the code of a command type in the envelope.
type cmdType uint16

// Command type codes. Append only; never renumber or reuse.
const (
	cmdInitInstance        cmdType = 1
	cmdCreateUser          cmdType = 2
	cmdCreateWorkspace     cmdType = 3
	cmdAddMember           cmdType = 4
	cmdCreateToken         cmdType = 5
	cmdDeleteToken         cmdType = 6
	cmdReadBarrier         cmdType = 7
	cmdUpdateUser          cmdType = 8
	cmdUpdateMember        cmdType = 9
	cmdRemoveMember        cmdType = 15
	cmdCreateScript        cmdType = 10
	cmdSetDeployment       cmdType = 11
	cmdArchiveScriptHash   cmdType = 12
	cmdArchiveScriptPath   cmdType = 13
	cmdDeleteScriptPath    cmdType = 14
	cmdPushJob             cmdType = 20
	cmdClaimJobs           cmdType = 21
	cmdHeartbeat           cmdType = 22
	cmdAppendLogs          cmdType = 23
	cmdCompleteJob         cmdType = 24
	cmdCancelJob           cmdType = 25
	cmdExpireLeases        cmdType = 26
	cmdDeleteOldJobs       cmdType = 27
	cmdClaimJobsFair       cmdType = 28
	cmdFlowTransition      cmdType = 29
	cmdCreateVariable      cmdType = 30
	cmdUpdateVariable      cmdType = 31
	cmdDeleteVariable      cmdType = 32
	cmdCreateFlow          cmdType = 42
	cmdArchiveFlow         cmdType = 43
	cmdDeleteFlow          cmdType = 44
	cmdUpdateFlow          cmdType = 45
	cmdCreateResource      cmdType = 50
	cmdUpdateResource      cmdType = 51
	cmdDeleteResource      cmdType = 52
	cmdCreateResourceType  cmdType = 53
	cmdUpdateResourceType  cmdType = 54
	cmdDeleteResourceType  cmdType = 55
	cmdCreateSchedule      cmdType = 56
	cmdUpdateSchedule      cmdType = 57
	cmdDeleteSchedule      cmdType = 58
	cmdCreateGroup         cmdType = 59
	cmdUpdateGroup         cmdType = 60
	cmdDeleteGroup         cmdType = 61
	cmdCreateFolder        cmdType = 62
	cmdUpdateFolder        cmdType = 63
	cmdDeleteFolder        cmdType = 64
	cmdDeleteOldAudit      cmdType = 70
	cmdEditPerms           cmdType = 71
	cmdSetOperatorSettings cmdType = 72
	cmdSealPhase           cmdType = 73
	cmdResealValues        cmdType = 74
	cmdSetWorkspaceEgress  cmdType = 75
	cmdPutBlob             cmdType = 76
	cmdInviteUser          cmdType = 80
	cmdAcceptInvite        cmdType = 81
	cmdDeleteInvite        cmdType = 82
)

// command is one state change. validate is pure and deterministic: it runs
// before proposing and again when an entry is decoded in the FSM. apply runs
// inside the FSM's write transaction; it checks everything before writing
// anything, so a refused command leaves no partial change.
type command interface {
	cmdType() cmdType
	validate() error
	apply(a *applier) (output, error)
	stamp() *base
}

// newCommand returns an empty command of type t, or nil if t is unknown.
func newCommand(t cmdType) command {
	switch t {
	case cmdInitInstance:
		return &initInstanceCmd{}
	case cmdReadBarrier:
		return &readBarrierCmd{}
	case cmdUpdateUser:
		return &updateUserCmd{}
	case cmdUpdateMember:
		return &updateMemberCmd{}
	case cmdRemoveMember:
		return &removeMemberCmd{}
	case cmdCreateUser:
		return &createUserCmd{}
	case cmdCreateWorkspace:
		return &createWorkspaceCmd{}
	case cmdAddMember:
		return &addMemberCmd{}
	case cmdCreateVariable:
		return &createVariableCmd{}
	case cmdUpdateVariable:
		return &updateVariableCmd{}
	case cmdDeleteVariable:
		return &deleteVariableCmd{}
	case cmdCreateFlow:
		return &createFlowCmd{}
	case cmdUpdateFlow:
		return &updateFlowCmd{}
	case cmdArchiveFlow:
		return &archiveFlowCmd{}
	case cmdDeleteFlow:
		return &deleteFlowCmd{}
	case cmdCreateToken:
		return &createTokenCmd{}
	case cmdDeleteToken:
		return &deleteTokenCmd{}
	case cmdCreateScript:
		return &createScriptCmd{}
	case cmdSetDeployment:
		return &setDeploymentCmd{}
	case cmdArchiveScriptHash:
		return &archiveScriptHashCmd{}
	case cmdArchiveScriptPath:
		return &archiveScriptPathCmd{}
	case cmdDeleteScriptPath:
		return &deleteScriptPathCmd{}
	case cmdPushJob:
		return &pushJobCmd{}
	case cmdClaimJobs:
		return &claimJobsCmd{}
	case cmdClaimJobsFair:
		return &claimJobsFairCmd{}
	case cmdFlowTransition:
		return &flowTransitionCmd{}
	case cmdHeartbeat:
		return &heartbeatCmd{}
	case cmdAppendLogs:
		return &appendLogsCmd{}
	case cmdCompleteJob:
		return &completeJobCmd{}
	case cmdCancelJob:
		return &cancelJobCmd{}
	case cmdExpireLeases:
		return &expireLeasesCmd{}
	case cmdDeleteOldJobs:
		return &deleteOldJobsCmd{}
	case cmdDeleteOldAudit:
		return &deleteOldAuditCmd{}
	case cmdEditPerms:
		return &editPermsCmd{}
	case cmdSetOperatorSettings:
		return &setOperatorSettingsCmd{}
	case cmdSetWorkspaceEgress:
		return &setWorkspaceEgressCmd{}
	case cmdPutBlob:
		return &putBlobCmd{}
	case cmdSealPhase:
		return &sealPhaseCmd{}
	case cmdResealValues:
		return &resealValuesCmd{}
	case cmdInviteUser:
		return &inviteUserCmd{}
	case cmdAcceptInvite:
		return &acceptInviteCmd{}
	case cmdDeleteInvite:
		return &deleteInviteCmd{}
	case cmdCreateResource:
		return &createResourceCmd{}
	case cmdUpdateResource:
		return &updateResourceCmd{}
	case cmdDeleteResource:
		return &deleteResourceCmd{}
	case cmdCreateResourceType:
		return &createResourceTypeCmd{}
	case cmdUpdateResourceType:
		return &updateResourceTypeCmd{}
	case cmdDeleteResourceType:
		return &deleteResourceTypeCmd{}
	case cmdCreateSchedule:
		return &createScheduleCmd{}
	case cmdUpdateSchedule:
		return &updateScheduleCmd{}
	case cmdDeleteSchedule:
		return &deleteScheduleCmd{}
	case cmdCreateGroup:
		return &createGroupCmd{}
	case cmdUpdateGroup:
		return &updateGroupCmd{}
	case cmdDeleteGroup:
		return &deleteGroupCmd{}
	case cmdCreateFolder:
		return &createFolderCmd{}
	case cmdUpdateFolder:
		return &updateFolderCmd{}
	case cmdDeleteFolder:
		return &deleteFolderCmd{}
	}
	return nil
}

// base is in every command: when the proposer stamped it and who asked. The
// FSM uses At as "now"; it never reads the applying node's clock.
type base struct {
	At    time.Time  `json:"at"`
	Actor vane.Actor `json:"actor"`
}

// stamp gives the FSM the command's time and actor (every command embeds base).
func (b *base) stamp() *base { return b }

func (b *base) validateBase() error {
	if b.At.IsZero() {
		return vane.Invalidf("command has no timestamp")
	}
	if len(b.Actor.Email) > 320 || len(b.Actor.Username) > vane.MaxNameLen {
		return vane.Invalidf("actor is too long")
	}
	return nil
}

// output is what an applied command returns to its proposer. One concrete type
// keeps forwarded results (see ApplyEncoded) trivially encodable.
type output struct {
	Job      *jobRecord  `json:"job,omitempty"`
	Jobs     []jobRecord `json:"jobs,omitempty"`
	Canceled bool        `json:"canceled,omitempty"`
	Requeued int         `json:"requeued,omitempty"`
	Failed   int         `json:"failed,omitempty"`
	// Deleted and More are a retention command's outcome: how many it
	// deleted, and whether it stopped at its bound with more to delete.
	Deleted int  `json:"deleted,omitempty"`
	More    bool `json:"more,omitempty"`
	// Resealed and Skipped are a re-seal command's outcome: records it
	// moved to format 1, and records that changed since they were read.
	Resealed int `json:"resealed,omitempty"`
	Skipped  int `json:"skipped,omitempty"`
	// Index is the raft index of the entry that carried the command, set
	// by the proposer side (deliver, ApplyEncoded) for read barriers.
	Index uint64 `json:"index,omitempty"`
}

// readBarrierCmd changes nothing: once applied, every write acknowledged
// before it was proposed is in the local state of every node that applied it.
// Linearizable reads use it (ReadIndex); it rides in group-committed entries
// with the writes, so concurrent reads share one log append.
type readBarrierCmd struct{ base }

func (c *readBarrierCmd) cmdType() cmdType                 { return cmdReadBarrier }
func (c *readBarrierCmd) validate() error                  { return c.validateBase() }
func (c *readBarrierCmd) apply(a *applier) (output, error) { return output{}, nil }

// encodedCommand is a validated command ready for an envelope.
type encodedCommand struct {
	typ  cmdType
	body []byte
}

func encodeCommand(c command) (encodedCommand, error) {
	if err := c.validate(); err != nil {
		return encodedCommand{}, err
	}
	body, err := codec.Marshal(c)
	if err != nil {
		return encodedCommand{}, fmt.Errorf("cannot encode command: %w", err)
	}
	if len(body) > maxCommandBytes {
		return encodedCommand{}, fmt.Errorf("command is %d bytes, more than %d: %w", len(body), maxCommandBytes, vane.ErrTooLarge)
	}
	return encodedCommand{typ: c.cmdType(), body: body}, nil
}

// encodeEntry builds one log entry from commands.
func encodeEntry(cmds []encodedCommand) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, c := range cmds {
		n += 2 + binary.MaxVarintLen64 + len(c.body)
	}
	b := make([]byte, 0, n)
	b = append(b, envelopeVersion)
	b = binary.AppendUvarint(b, uint64(len(cmds)))
	for _, c := range cmds {
		b = binary.BigEndian.AppendUint16(b, uint16(c.typ))
		b = binary.AppendUvarint(b, uint64(len(c.body)))
		b = append(b, c.body...)
	}
	return b
}

// errBadEntry marks an entry that cannot be decoded at all.
var errBadEntry = errors.New("malformed command entry")

// splitEntry parses an entry's envelope into its commands, without decoding
// their bodies (the bodies alias b).
func splitEntry(b []byte) ([]encodedCommand, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty: %w", errBadEntry, vane.ErrInvalid)
	}
	if b[0] != envelopeVersion {
		return nil, fmt.Errorf("%w: unknown envelope version %d (this node reads version %d): %w",
			errBadEntry, b[0], envelopeVersion, vane.ErrInvalid)
	}
	b = b[1:]
	count, n := binary.Uvarint(b)
	if n <= 0 || count == 0 || count > maxCommandsPerEntry {
		return nil, fmt.Errorf("%w: bad command count: %w", errBadEntry, vane.ErrInvalid)
	}
	b = b[n:]
	out := make([]encodedCommand, count)
	for i := range out {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: truncated at command %d: %w", errBadEntry, i, vane.ErrInvalid)
		}
		t := cmdType(binary.BigEndian.Uint16(b))
		b = b[2:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) || size > maxCommandBytes {
			return nil, fmt.Errorf("%w: bad length of command %d: %w", errBadEntry, i, vane.ErrInvalid)
		}
		out[i] = encodedCommand{typ: t, body: b[n : n+int(size)]}
		b = b[n+int(size):]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes: %w", errBadEntry, len(b), vane.ErrInvalid)
	}
	return out, nil
}

// decodeEntry parses an entry into its commands and validates each. An
// envelope error fails the whole entry; a command that decodes but does not
// validate comes back as nil with its error in errs, so the other commands of
// the entry still apply.
func decodeEntry(b []byte) (cmds []command, errs []error, err error) {
	raw, err := splitEntry(b)
	if err != nil {
		return nil, nil, err
	}
	cmds = make([]command, len(raw))
	errs = make([]error, len(raw))
	for i, r := range raw {
		c := newCommand(r.typ)
		if c == nil {
			errs[i] = fmt.Errorf("unknown command type %d (a newer vane wrote it?): %w", r.typ, vane.ErrInvalid)
			continue
		}
		if err := codec.Unmarshal(r.body, c); err != nil {
			errs[i] = fmt.Errorf("cannot decode command type %d: %v: %w", r.typ, err, vane.ErrInvalid)
			continue
		}
		if err := c.validate(); err != nil {
			errs[i] = err
			continue
		}
		cmds[i] = c
	}
	return cmds, errs, nil
}
