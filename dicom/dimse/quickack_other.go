//go:build !linux

package dimse

import "net"

func withQuickAck(c net.Conn) net.Conn { return c }
