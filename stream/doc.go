// Package stream will hold the live WebRTC side of Lifeline: the box's WHIP publisher
// (RFC 9725), its video sources (RTSP camera, RTP/H.264, a test clip), and the hub's
// WHIP ingest, WHEP fan-out and the emergency doctors' viewer page.
//
// It is the next wave of work and is not built yet; `lifeline demo` and the status
// pages say so rather than pretend. It will consume the vitals bus of package
// telemetry and the box identity of internal/trust.
package stream
