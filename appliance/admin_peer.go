package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"golang.org/x/sys/unix"

	"lifeline/internal/service"
)

// Who asked through the admin socket, for the audit: the kernel tells the uid and pid
// of the process at the other end of a Unix socket (SO_PEERCRED), which the process
// cannot forge.

type askerKey struct{}

// askedBy names the process that sent r through the admin socket.
func askedBy(r *http.Request) string {
	if who, ok := r.Context().Value(askerKey{}).(string); ok {
		return who
	}
	return bySocket
}

// peerName describes the process at the other end of a Unix socket connection.
func peerName(c net.Conn) string {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return bySocket
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return bySocket
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) { cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil || credErr != nil {
		return bySocket
	}
	return fmt.Sprintf("%s, uid %d, pid %d", bySocket, cred.Uid, cred.Pid)
}

// adminService serves the admin socket, each request knowing who sent it.
func adminService(ln net.Listener, handler http.Handler, log *slog.Logger) service.Service {
	return service.Service{Name: "admin", Run: func(ctx context.Context, h *service.Health) error {
		srv := boundServer(&http.Server{
			Handler:  handler,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				return context.WithValue(ctx, askerKey{}, peerName(c))
			},
		})
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		h.Ready("serving on socket " + ln.Addr().String())
		select {
		case err := <-errc:
			return fmt.Errorf("admin socket %s: %w", ln.Addr(), err)
		case <-ctx.Done():
			return shutdown(srv, errc)
		}
	}}
}
