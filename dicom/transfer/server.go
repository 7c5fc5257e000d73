package transfer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// Server serves a handler (usually Ingest.Handler) over HTTP/3 on one UDP socket,
// accepting 0-RTT from boxes that resume a TLS session. The hub may instead mount the
// handler on its own HTTP/3 + HTTPS server; this one exists so the transfer can run
// (and be tested) on its own.
type Server struct {
	h3   *http3.Server
	conn net.PacketConn
	log  *slog.Logger

	conns, resumed, zeroRTT atomic.Int64
}

type connKey struct{}

// connInfo is attached to each QUIC connection's context so the first request on it
// can record how the connection was made.
type connInfo struct {
	conn    *quic.Conn
	counted atomic.Bool
}

// Listen binds addr (UDP, e.g. "127.0.0.1:8443") for HTTP/3 with tlsConf. The TLS
// configuration should verify client certificates against the hub's authority;
// handler decides what a verified device may do.
func Listen(addr string, tlsConf *tls.Config, handler http.Handler, log *slog.Logger) (*Server, error) {
	if tlsConf == nil {
		return nil, errors.New("transfer: HTTP/3 server needs a TLS configuration")
	}
	if log == nil {
		log = slog.Default()
	}
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("transfer: listen on %s/udp: %w", addr, err)
	}
	s := &Server{conn: udp, log: log}
	s.h3 = &http3.Server{
		TLSConfig: http3.ConfigureTLSConfig(tlsConf.Clone()),
		QUICConfig: &quic.Config{
			Allow0RTT:       true,
			MaxIdleTimeout:  15 * time.Second,
			KeepAlivePeriod: 5 * time.Second,
		},
		Handler: s.observe(handler),
		Logger:  log,
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
			s.conns.Add(1)
			return context.WithValue(ctx, connKey{}, &connInfo{conn: c})
		},
	}
	return s, nil
}

// Addr is the bound UDP address.
func (s *Server) Addr() *net.UDPAddr { return s.conn.LocalAddr().(*net.UDPAddr) }

// Serve answers requests until ctx ends, then closes the socket.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.h3.Serve(s.conn) }()
	select {
	case <-ctx.Done():
		s.Close()
		<-errc
		return nil
	case err := <-errc:
		s.conn.Close()
		if errors.Is(err, http.ErrServerClosed) || errors.Is(err, quic.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// Close stops the server at once, cutting connections as a crash or power cut would.
func (s *Server) Close() error {
	err := s.h3.Close()
	s.conn.Close()
	return err
}

// ServerStats counts connections and how many skipped a full handshake.
type ServerStats struct {
	Connections int64 `json:"connections"`
	Resumed     int64 `json:"resumed"`  // TLS session resumption
	ZeroRTT     int64 `json:"zero_rtt"` // requests accepted in 0-RTT
}

// Stats returns connection counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{Connections: s.conns.Load(), Resumed: s.resumed.Load(), ZeroRTT: s.zeroRTT.Load()}
}

func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ci, ok := r.Context().Value(connKey{}).(*connInfo); ok && ci.counted.CompareAndSwap(false, true) {
			select {
			case <-ci.conn.HandshakeComplete():
				cs := ci.conn.ConnectionState()
				if cs.TLS.DidResume {
					s.resumed.Add(1)
				}
				if cs.Used0RTT {
					s.zeroRTT.Add(1)
				}
			case <-r.Context().Done():
			}
		}
		next.ServeHTTP(w, r)
	})
}
