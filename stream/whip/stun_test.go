package whip

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pion/stun/v4"
)

// stunServer answers STUN binding requests on loopback, so that the endpoint's Link
// header names a server that works and the test can see the box used it.
type stunServer struct {
	conn     *net.UDPConn
	requests atomic.Int64
}

func newSTUNServer(t *testing.T) *stunServer {
	s := &stunServer{conn: loopbackUDP(t)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, src, err := s.conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if req.Decode() != nil || req.Type != stun.BindingRequest {
				continue
			}
			s.requests.Add(1)
			resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: src.IP, Port: src.Port}, stun.Fingerprint)
			if err != nil {
				t.Errorf("build STUN response: %v", err)
				return
			}
			s.conn.WriteToUDP(resp.Raw, src)
		}
	}()
	t.Cleanup(func() { s.conn.Close(); wg.Wait() })
	return s
}

func (s *stunServer) url() string { return "stun:" + s.conn.LocalAddr().String() }
