// Package hubstate is the hub's state behind one small interface: the boxes it knows
// and their enrolment codes, the studies they upload (uploads in progress, the
// archive index, study tracking, deliveries owed to the PACS), and the people who
// watch in the viewer (accounts, sessions, one-time sign-in links).
//
// Callers see Store and its parts, never an engine's types, so that another engine
// can take the embedded one's place (bbolt in package boltstate; PostgreSQL when
// several hubs share their state) without touching the protocols built on it. Every
// step that must be atomic — an enrolment code consumed exactly once, an upload offset
// moved only from where it was, an instance archived together with its upload, its
// study and the delivery it is owed — is one method here, not a transaction the caller
// holds open. An engine may run a method's work in one transaction, take row locks,
// or retry on a serialisation failure; the callers cannot tell.
//
// A shared engine maps each atomic method onto its own guarantees; for PostgreSQL,
// for instance: RedeemCode as one transaction that locks the code's row (SELECT … FOR
// UPDATE) before it calls issue; AdvanceUpload as one conditional UPDATE … WHERE
// offset = from; ArchiveInstance as one transaction over the instance, upload,
// delivery and study rows, whose INSERT of the instance fails on the SOP Instance
// UID's key when another hub archived other content first (the ConflictError);
// QuarantineInstance as one transaction over the quarantine, upload and study rows.
// Study records are keyed by (Study Instance UID, device), quarantined copies by
// (SOP Instance UID, device, digest). hubstatetest holds the behaviour all engines
// share.
//
// Durability: every method that writes returns only once the write is committed to
// stable storage, so the hub may acknowledge to a box as soon as it returns.
//
// Further parts (the vitals history, positions and missions,
// which hub holds each box's live session) join Store as further small interfaces.
// Runs on the hub only.
package hubstate

import (
	"errors"
)

// Store is all of the hub's state. It is safe for concurrent use. Every method takes
// a context; a cancelled one fails the call and writes nothing.
type Store interface {
	Registry
	Studies
	Accounts
	// Close releases the state; the Store must not be used afterwards.
	Close() error
}

// Errors an engine returns; callers test them with errors.Is.
var (
	// ErrNotFound says the device, upload, instance or study asked for is unknown.
	ErrNotFound = errors.New("hubstate: not found")
	// ErrHeld says another process holds an embedded engine's state (one hub per
	// state directory); the caller may reach that process instead.
	ErrHeld = errors.New("hubstate: the hub's state is held by another process")
)
