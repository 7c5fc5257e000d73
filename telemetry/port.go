package telemetry

import (
	"errors"
	"io"
	"os"
	"time"
)

// deadliner is what net.Conn and pollable *os.File (a pty master) provide.
type deadliner interface {
	io.ReadWriter
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// DeadlinePort adapts a net.Conn or a pollable *os.File to Port: a read timeout returns
// 0, nil as a serial port does, and every Write is bounded by writeTimeout (0: 2 s), so a
// peer that stops reading cannot block the driver forever.
func DeadlinePort(rw deadliner, writeTimeout time.Duration) Port {
	if writeTimeout <= 0 {
		writeTimeout = 2 * time.Second
	}
	return &deadlinePort{rw: rw, wt: writeTimeout}
}

type deadlinePort struct {
	rw deadliner
	rt time.Duration
	wt time.Duration
}

func (p *deadlinePort) SetReadTimeout(d time.Duration) error {
	p.rt = d
	return nil
}

func (p *deadlinePort) Read(b []byte) (int, error) {
	var dl time.Time
	if p.rt > 0 {
		dl = time.Now().Add(p.rt)
	}
	if err := p.rw.SetReadDeadline(dl); err != nil {
		return 0, err
	}
	n, err := p.rw.Read(b)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return n, nil
	}
	return n, err
}

func (p *deadlinePort) Write(b []byte) (int, error) {
	if err := p.rw.SetWriteDeadline(time.Now().Add(p.wt)); err != nil {
		return 0, err
	}
	return p.rw.Write(b)
}
