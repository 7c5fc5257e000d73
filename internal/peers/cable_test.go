package peers

import (
	"bytes"
	"os"
	"testing"
	"time"
)

// TestCableCarriesBytesBothWaysAndPulls: what one end writes, the other reads, in both
// directions; after Pull both links are gone.
func TestCableCarriesBytesBothWaysAndPulls(t *testing.T) {
	c := PlugCable(t)
	box, err := os.OpenFile(c.BoxEnd, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	dev, err := os.OpenFile(c.DeviceEnd, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	for _, dir := range []struct {
		name     string
		from, to *os.File
	}{{"box to device", box, dev}, {"device to box", dev, box}} {
		msg := []byte("MSH|" + dir.name)
		if _, err := dir.from.Write(msg); err != nil {
			t.Fatalf("%s: write: %v", dir.name, err)
		}
		dir.to.SetReadDeadline(time.Now().Add(10 * time.Second))
		got := make([]byte, 0, len(msg))
		buf := make([]byte, 64)
		for len(got) < len(msg) {
			n, err := dir.to.Read(buf)
			if err != nil {
				t.Fatalf("%s: read after %q: %v", dir.name, got, err)
			}
			got = append(got, buf[:n]...)
		}
		if !bytes.Equal(got, msg) {
			t.Errorf("%s: read %q, wrote %q", dir.name, got, msg)
		}
	}
	c.Pull()
	for _, p := range []string{c.BoxEnd, c.DeviceEnd} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s still there after the cable was pulled", p)
		}
	}
}
