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
// Runs on both sides: Outbox on the box, Archive on the hub, Decode on either.
//
// On the box, the appliance runs one Outbox on the telemetry bus and the box's store
// and hands it the publisher's data channels:
//
//	out, _ := vitals.NewOutbox(vitals.OutboxConfig{Store: store, Bus: bus, Device: id, OnControl: showToCrew})
//	go out.Run(ctx)
//	// "vitals":      OnOpen out.OpenReliable, OnClose out.CloseReliable, OnMessage out.HandleFromHub
//	// "vitals-wave": OnOpen out.OpenWave,     OnClose out.CloseWave
//	// "control":     OnMessage out.HandleFromHub
//	// status page:   out.Stats(); the crew read a message: out.ConfirmRead(seq)
//
// On the hub, one Archive over a HistoryStore (BoltHistory in the hub's own store, or
// stream/vitals/pghistory in the database that several hubs share) takes what the SFU
// receives and sends the acks back:
//
//	a, _ := vitals.NewArchive(vitals.ArchiveConfig{History: vitals.NewBoltHistory(store, vitals.HistoryBounds{}),
//		SendAck: func(device string, ack []byte) { sfu.SendToPublisher(device, vitals.LabelReliable, ack) }})
//	go a.Run(ctx)
//	// every box message:       a.Receive(device, label, data)
//	// the box's vitals opened: a.Ack(device), sent on "vitals"
//	// a doctor writes:         stream/crew numbers and keeps it, and sends it on "control"
//	// mux.Handle("GET /api/v1/devices/{device}/vitals", viewerAuth(a.HistoryHandler()))
package vitals
