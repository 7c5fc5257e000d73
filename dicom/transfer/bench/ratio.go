package main

import (
	"os"

	"github.com/klauspost/compress/zstd"
)

// zstdRatio compresses the study the way the forwarder does (each chunk of chunk
// bytes on its own, zstd default level, kept only when it saves 10 %) and returns
// study bytes / wire bytes: what compression alone can gain on this study.
func zstdRatio(s *study, chunk int) (float64, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return 0, err
	}
	defer enc.Close()
	var raw, wire int64
	buf := make([]byte, 0, chunk)
	for _, f := range s.Files {
		data, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		for off := 0; off < len(data); off += chunk {
			c := data[off:min(off+chunk, len(data))]
			z := enc.EncodeAll(c, buf[:0])
			raw += int64(len(c))
			if len(z) < len(c)*9/10 {
				wire += int64(len(z))
			} else {
				wire += int64(len(c))
			}
		}
	}
	return float64(raw) / float64(wire), nil
}
