package camera

import (
	"encoding/binary"
	"net"
	"os"
	"slices"
	"testing"
	"time"
)

// BenchmarkRTPSourceDelay measures the delay the box's video source adds: from the
// moment the last packet of a picture is written to the source's UDP port to the
// moment the source emits the whole picture, over loopback, for the packets ffmpeg's
// RTP muxer sent (stream/h264's capture: High profile, 4 slices a picture, B-frames).
// It reports the median and 99th percentile; issue 12's goal for the whole video path
// (RTP in to RTP out) is a p99 under 5 ms.
func BenchmarkRTPSourceDelay(b *testing.B) {
	data, err := os.ReadFile("../h264/testdata/ffmpeg_high_bframes_4slices.rtp")
	if err != nil {
		b.Fatal(err)
	}
	var pkts [][]byte
	for len(data) >= 2 {
		n := int(data[0])<<8 | int(data[1])
		pkts = append(pkts, data[2:2+n])
		data = data[2+n:]
	}
	src := NewRTPSource("127.0.0.1:0", 10*time.Second)
	out := make(chan time.Time, 4)
	stop := run(b, src, func(Frame) { out <- time.Now() })
	conn, err := net.Dial("udp", <-src.Bound())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var delays []time.Duration
	seq := uint16(0)
	ts := uint32(0)
	for b.Loop() {
		// One pass of the capture, renumbered to continue the last, a picture at a
		// time: send its packets, wait until it is out, and time the wait.
		for _, p := range pkts {
			pkt := slices.Clone(p)
			binary.BigEndian.PutUint16(pkt[2:], seq)
			binary.BigEndian.PutUint32(pkt[4:], binary.BigEndian.Uint32(pkt[4:])+ts)
			seq++
			sent := time.Now()
			if _, err := conn.Write(pkt); err != nil {
				b.Fatal(err)
			}
			if pkt[1]&0x80 == 0 { // no marker: the picture is not complete yet
				continue
			}
			select {
			case at := <-out:
				delays = append(delays, at.Sub(sent))
			case <-time.After(time.Second):
				// A picture dropped (a lost datagram, or one waiting for an IDR):
				// not a delay.
			}
		}
		ts += 90000 * 3 // a new pass three seconds later on the camera's clock
	}
	b.StopTimer()
	_ = stop()
	if len(delays) == 0 {
		b.Fatal("no picture came out")
	}
	slices.Sort(delays)
	b.ReportMetric(float64(delays[len(delays)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(delays[len(delays)*99/100].Microseconds()), "p99-µs")
}
