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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// Server is the hub's public listener: HTTP/3 on UDP, which boxes upload over, and
// HTTPS on TCP at the same address, for browsers and for clients without QUIC. One
// handler serves both. It lives beside the upload protocol because its QUIC settings
// are that protocol's: how long a box on a mobile link may fall silent, and what one
// box may make the hub buffer. The hub runs this server, and the transfer tests run
// the same one.
type Server struct {
	h3          *http3.Server
	https       *http.Server
	udp         net.PacketConn
	tcp         net.Listener
	readTimeout time.Duration
	log         *slog.Logger

	conns, resumed atomic.Int64
}

// ServerConfig configures Listen. Zero values mean the defaults.
type ServerConfig struct {
	// TLS holds the hub's certificate and how client certificates are checked; the
	// handler decides what a verified device may do. Required.
	TLS *tls.Config
	// Handler serves every request on both transports. Required.
	Handler http.Handler
	// RequestReadTimeout bounds reading one request, body included; zero means
	// DefaultRequestReadTimeout. A handler that must read longer (a WebSocket or
	// another upgraded connection) lifts the bound for its request with
	// http.NewResponseController(w).SetReadDeadline(time.Time{}), and the write
	// bound over TCP (RequestReadTimeout and a minute) with SetWriteDeadline.
	RequestReadTimeout time.Duration
	// Log receives the servers' errors; nil means slog.Default().
	Log *slog.Logger
	// Metrics, if set, receives connection counters.
	Metrics prometheus.Registerer
}

// DefaultRequestReadTimeout bounds reading one request. The largest request a box
// sends is one chunk (MaxChunk, 4 MiB), which takes 11 s at the 4g-rural uplink of
// 3 Mbit/s; two minutes leaves room for a link ten times slower. A body trickled
// slower than that (about 35 kB/s for a full chunk) no longer holds a stream or a
// connection. A long upload is many chunks, each its own request, so it is never cut
// by this bound, however long the whole study takes.
const DefaultRequestReadTimeout = 2 * time.Minute

// Timeouts of the TCP side that have no QUIC counterpart.
const (
	// headerTimeout: request headers are small; a client that cannot send them in
	// 10 s is not one we want to wait for.
	headerTimeout = 10 * time.Second
	// idleTimeout: an idle keep-alive connection is closed after 2 min, so viewers
	// that went away do not hold sockets.
	idleTimeout = 2 * time.Minute
	// writeSlack is how much longer than reading a request its answer may take
	// (the server's write timeout runs from the end of the headers, so it covers
	// reading the body too): a client that stops reading answers is cut then.
	writeSlack = time.Minute
	// shutdownGrace is how long requests in progress may finish when the hub stops.
	shutdownGrace = 2 * time.Second
)

// quicConfig is the QUIC side of the hub's public server, for boxes on 4G and 5G
// links that drop out, change address and come back. Every field the hub depends on
// is set here, with why; the rest are quic-go's defaults on purpose.
func quicConfig() *quic.Config {
	return &quic.Config{
		// A silent connection ends after the shorter of both ends' idle timeouts.
		// The box chooses its own (10 s by default, with keep-alives at a third of
		// it, so a handover's 3 s outage does not end it); 30 s here only bounds how
		// long the hub keeps a vanished box's connection: a power cut or a tunnel.
		MaxIdleTimeout: 30 * time.Second,
		// The hub sends no keep-alives: the box keeps its connection (and its NAT
		// mapping) alive while it has work. A hub that pinged every box would hold a
		// connection open for every idle ambulance.
		KeepAlivePeriod: 0,
		// A handshake on a lossy uplink may need several retransmissions; quic-go's
		// 5 s gives up on a 4g-rural link during a burst of loss.
		HandshakeIdleTimeout: 10 * time.Second,
		// No 0-RTT: requests in 0-RTT can be replayed by anyone on the path, and the
		// box does not send them (client.go: it waits for the resumed handshake).
		// Session resumption still saves the box a full handshake after an outage.
		Allow0RTT: false,
		// A box has forward.parallel (8 by default) uploads in flight over its connections; 100 concurrent
		// requests per connection bound what one client can start at once.
		MaxIncomingStreams: 100,
		// Receive windows bound what one stream and one connection can make the hub
		// buffer: a whole chunk (MaxChunk) may be in flight on a stream, and a box's
		// parallel chunks on its connection.
		MaxStreamReceiveWindow:     MaxChunk + 2<<20,
		MaxConnectionReceiveWindow: 4 * (MaxChunk + 2<<20),
	}
}

// Listen binds addr ("host:port") on TCP and on UDP, the same port for both, since
// the HTTPS side tells browsers by Alt-Svc that HTTP/3 is on that port. Port 0 picks
// a free port for both.
func Listen(addr string, cfg ServerConfig) (*Server, error) {
	if cfg.TLS == nil || cfg.Handler == nil {
		return nil, errors.New("transfer: the hub's server needs a TLS configuration and a handler")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.RequestReadTimeout <= 0 {
		cfg.RequestReadTimeout = DefaultRequestReadTimeout
	}
	tcp, udp, err := listenTCPAndUDP(addr)
	if err != nil {
		return nil, err
	}
	s := &Server{udp: udp, tcp: tcp, readTimeout: cfg.RequestReadTimeout, log: cfg.Log}
	handler := s.boundReads(cfg.Handler)
	s.h3 = &http3.Server{
		TLSConfig:  http3.ConfigureTLSConfig(cfg.TLS.Clone()),
		QUICConfig: quicConfig(),
		Handler:    s.observe(handler),
		Logger:     cfg.Log,
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
			s.conns.Add(1)
			return context.WithValue(ctx, connKey{}, &connInfo{conn: c})
		},
	}
	s.https = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.h3.SetQUICHeaders(w.Header())
			handler.ServeHTTP(w, r)
		}),
		TLSConfig:         cfg.TLS.Clone(),
		ReadHeaderTimeout: headerTimeout,
		WriteTimeout:      cfg.RequestReadTimeout + writeSlack,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	if cfg.Metrics != nil {
		if err := s.register(cfg.Metrics); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// listenTCPAndUDP binds the same port on both. With port 0 the kernel picks the UDP
// port, which may be taken on TCP; then it tries again with another.
func listenTCPAndUDP(addr string) (net.Listener, net.PacketConn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("transfer: listen address %q: %w", addr, err)
	}
	for attempt := 1; ; attempt++ {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("transfer: listen on %s/udp: %w", addr, err)
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			return tcp, udp, nil
		}
		udp.Close()
		if port != "0" || attempt == 5 {
			return nil, nil, fmt.Errorf("transfer: listen on %s/tcp: %w", udp.LocalAddr(), err)
		}
	}
}

// boundReads gives each request RequestReadTimeout to arrive whole, on either
// transport, so that a body trickled byte by byte cannot hold a stream forever.
func (s *Server) boundReads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.readTimeout)); err != nil {
			s.log.Warn("transfer: cannot bound a request's read time", "proto", r.Proto, "err", err)
		}
		next.ServeHTTP(w, r)
	})
}

// Addr is the bound address, the same port on TCP and UDP.
func (s *Server) Addr() string { return s.udp.LocalAddr().String() }

// Serve answers requests until ctx ends or a transport fails. On ctx's end,
// requests over TCP get a short grace period and QUIC connections are closed.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- s.https.ServeTLS(s.tcp, "", "") }()
	go func() { errc <- s.h3.Serve(s.udp) }()
	var errs []error
	select {
	case err := <-errc:
		errs = append(errs, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	s.https.Shutdown(shutdownCtx)
	s.h3.Close()
	s.udp.Close()
	for len(errs) < cap(errc) {
		errs = append(errs, <-errc)
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, quic.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("transfer: hub server on %s: %w", s.Addr(), err)
		}
	}
	return nil
}

// Close stops the server at once, cutting connections as a crash or power cut would.
func (s *Server) Close() error {
	err := s.h3.Close()
	s.https.Close()
	s.tcp.Close()
	s.udp.Close()
	return err
}

// ServerStats counts QUIC connections and how many resumed a TLS session.
type ServerStats struct {
	Connections int64 `json:"connections"`
	Resumed     int64 `json:"resumed"` // TLS session resumption: no full handshake
}

// Stats returns connection counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{Connections: s.conns.Load(), Resumed: s.resumed.Load()}
}

func (s *Server) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lifeline_hub_quic_connections_total",
			Help: "QUIC connections accepted by the hub."}, func() float64 { return float64(s.conns.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lifeline_hub_quic_resumed_total",
			Help: "QUIC connections that resumed a TLS session instead of a full handshake."},
			func() float64 { return float64(s.resumed.Load()) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("transfer: register server metrics: %w", err)
		}
	}
	return nil
}

type connKey struct{}

// connInfo is attached to each QUIC connection's context so the first request on it
// can record how the connection was made.
type connInfo struct {
	conn    *quic.Conn
	counted atomic.Bool
}

func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ci, ok := r.Context().Value(connKey{}).(*connInfo); ok && ci.counted.CompareAndSwap(false, true) {
			select {
			case <-ci.conn.HandshakeComplete():
				if ci.conn.ConnectionState().TLS.DidResume {
					s.resumed.Add(1)
				}
			case <-r.Context().Done():
			}
		}
		next.ServeHTTP(w, r)
	})
}
