package dimse

import (
	"net"
	"syscall"
)

// quickAckReader asks the kernel to acknowledge at once before each read. Senders
// built on DCMTK leave Nagle's algorithm on and write each PDU header and body
// separately, so without this every C-STORE waits for our delayed ACK (40 ms on
// Linux) two or three times. TCP_QUICKACK is not sticky, hence once per read.
type quickAckReader struct {
	c  net.Conn
	rc syscall.RawConn
}

func withQuickAck(c net.Conn) readerConn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckReader{c: c, rc: rc}
}

func (q *quickAckReader) Read(p []byte) (int, error) {
	q.rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
	return q.c.Read(p)
}
