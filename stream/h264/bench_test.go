package h264

import (
	"testing"
)

// BenchmarkDepacketizer measures the box's cost per RTP packet of grouping a real
// ffmpeg stream (High profile, 4 slices a picture, B-frames) into access units:
// part of the delay the box adds between the camera and the WHIP publisher.
func BenchmarkDepacketizer(b *testing.B) {
	pkts := readCapture(b, captureFile)
	bytes := 0
	for _, p := range pkts {
		bytes += len(p.Payload)
	}
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	pictures := 0
	for b.Loop() {
		d := NewDepacketizer()
		for _, p := range pkts {
			_ = d.Push(p, func(AccessUnit) { pictures++ })
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts)), "ns/packet")
}
