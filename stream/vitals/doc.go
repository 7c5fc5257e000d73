// Package vitals is the patient's vitals on the wire between the ambulance box and the
// hospital hub: the JSON message format carried over the WebRTC data channels "vitals"
// (reliable, ordered), "vitals-wave" (unordered, no retransmits) and "control" (hub to
// crew), the box's Outbox that keeps every reliable message in a bounded durable ring
// and replays what the hub has not acknowledged after any reconnect, and the hub's
// Archive that validates, de-duplicates, stores and serves the history a doctor sees on
// opening a view mid-transport.
//
// This package is the only place that knows the format; the WHIP publisher on the box
// and the hub's SFU carry its messages as opaque bytes. stream/VITALS.md documents the
// format for the hospital's own systems.
//
// Runs on both sides: Outbox on the box, Archive on the hub, Decode on either and in
// the ED viewer's JavaScript.
package vitals
