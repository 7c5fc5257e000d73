package dimse

import (
	"net"
	"syscall"
)

// quickAckConn asks the kernel to acknowledge at once before each read. Senders
// built on DCMTK leave Nagle's algorithm on and write each PDU header and body
// separately, so without this every C-STORE waits for our delayed ACK (40 ms on
// Linux) two or three times. TCP_QUICKACK is not sticky, hence once per read.
type quickAckConn struct {
	net.Conn
	rc syscall.RawConn
}

// withQuickAck wraps a TCP connection (other kinds are returned as they are). For
// DICOM TLS the TCP connection is wrapped before TLS goes on top.
func withQuickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckConn{Conn: c, rc: rc}
}

func (q *quickAckConn) Read(p []byte) (int, error) {
	q.rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
	return q.Conn.Read(p)
}
