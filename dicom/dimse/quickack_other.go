//go:build !linux

package dimse

import "net"

func withQuickAck(c net.Conn) readerConn { return c }
