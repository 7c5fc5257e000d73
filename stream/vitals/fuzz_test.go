package vitals

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode feeds the decoder what a hostile network could send. It must never panic,
// every refusal must wrap ErrInvalid, and whatever it accepts must encode again to a
// message it accepts with the same meaning.
func FuzzDecode(f *testing.F) {
	p := newPatient(t0)
	var seq, waveSeq uint64
	for range 11 {
		for _, data := range encodeAll(f, p.next(), &seq, &waveSeq) {
			if len(data) < 1200 {
				f.Add(data)
			}
		}
	}
	f.Add([]byte(`{"v":1,"type":"ack","seq":42,"epoch":"9f2c4e1a7b3d5e60","replay":true}`))
	f.Add([]byte(`{"v":1,"type":"text","seq":3,"id":"m-17","from":"Dr Li","text":"Give aspirin 300 mg","hub_time":"2026-12-02T04:31:00Z"}`))
	f.Add([]byte(`{"v":2,"type":"numeric"}`))
	f.Add([]byte(`{"v":1,"type":"wave","seq":1,"epoch":"e","device":"d","code":1,"rate":500,"start":"2026-12-02T04:30:00Z","box_time":"2026-12-02T04:30:00Z","samples":[1,null,-2.5e-3]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("refusal %v does not wrap ErrInvalid", err)
			}
			return
		}
		again, err := Marshal(&m)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it again: %v", data, err)
		}
		back, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded %q is refused: %v", again, err)
		}
		third, err := Marshal(&back)
		if err != nil || !bytes.Equal(again, third) {
			t.Fatalf("encoding is not stable: %q then %q (%v)", again, third, err)
		}
	})
}
