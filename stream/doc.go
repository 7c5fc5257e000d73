// Package stream is the live WebRTC side of Lifeline: the patient → ED screen path.
// Its subpackages, one protocol each:
//
//   - camera, h264, rtsp (box): the camera's video and audio as it encoded them, from
//     an RTSP camera, raw RTP/H.264 on a UDP port, or the clip built into the binary;
//   - vitals (both sides): the monitors' vitals on the data channels, the box's durable
//     replay outbox and the hub's archive; stream/VITALS.md documents the format;
//   - whip (box): the WHIP publisher (RFC 9725), with ICE restarts across link drops
//     and the congestion controller's estimate for rate decisions;
//   - sfu (hub): WHIP ingest and WHEP fan-out to the doctors' browsers;
//   - edscreen (hub): the ED screen's pages.
//
// The appliance wires them: appliance/edge_stream.go on the box, appliance/hub_stream.go
// on the hub.
package stream
