package dispatch

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"lifeline/dispatch/jt808"
	"lifeline/internal/durable"
)

// platformParams are what dispatch may change over the air (0x8103), kept in the
// store so a restarted box keeps them.
type platformParams struct {
	server    string
	interval  time.Duration
	heartbeat time.Duration
	authCode  string
}

type paramsRecord struct {
	Server     string `json:"server,omitempty"`
	IntervalS  int    `json:"interval_s,omitempty"`
	HeartbeatS int    `json:"heartbeat_s,omitempty"`
	AuthCode   string `json:"auth_code,omitempty"`
}

const paramsKey = "platform-params"

func loadParams(store *durable.Store, cfg Config) platformParams {
	p := platformParams{server: cfg.Server, interval: cfg.Interval, heartbeat: cfg.Heartbeat}
	var rec paramsRecord
	if store.GetJSON(metaBucket, paramsKey, &rec) == nil {
		if rec.Server != "" {
			p.server = rec.Server
		}
		if rec.IntervalS > 0 {
			p.interval = time.Duration(rec.IntervalS) * time.Second
		}
		if rec.HeartbeatS > 0 {
			p.heartbeat = time.Duration(rec.HeartbeatS) * time.Second
		}
		p.authCode = rec.AuthCode
	}
	return p
}

func (r *Reporter) saveParamsLocked() error {
	rec := paramsRecord{Server: r.params.server, IntervalS: int(r.params.interval / time.Second), HeartbeatS: int(r.params.heartbeat / time.Second), AuthCode: r.params.authCode}
	return r.cfg.Store.PutJSON(metaBucket, paramsKey, rec)
}

// applyParams applies a 0x8103. It returns whether the server address changed (the
// session must move). A value out of range refuses the whole message, so dispatch
// never leaves the box half-configured.
func (r *Reporter) applyParams(ps []jt808.Param) (moved bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.params
	host, port, _ := net.SplitHostPort(p.server)
	for _, x := range ps {
		switch x.ID {
		case jt808.ParamReportInterval:
			v, err := x.DWORD()
			if err != nil || v < 1 || v > 3600 {
				return false, fmt.Errorf("report interval %d s: want 1 to 3600 (%v)", v, err)
			}
			p.interval = time.Duration(v) * time.Second
		case jt808.ParamHeartbeat:
			v, err := x.DWORD()
			if err != nil || v < 5 || v > 3600 {
				return false, fmt.Errorf("heartbeat %d s: want 5 to 3600 (%v)", v, err)
			}
			p.heartbeat = time.Duration(v) * time.Second
		case jt808.ParamMainServer:
			s := strings.TrimSpace(x.String())
			if h, pt, err := net.SplitHostPort(s); err == nil { // 2019: "host:port"
				host, port = h, pt
			} else {
				host = s
			}
		case jt808.ParamServerTCPPort:
			v, err := x.DWORD()
			if err != nil || v == 0 || v > 65535 {
				return false, fmt.Errorf("server TCP port %d (%v)", v, err)
			}
			port = strconv.Itoa(int(v))
		}
	}
	if host == "" || port == "" {
		return false, fmt.Errorf("server address %q:%q incomplete", host, port)
	}
	p.server = net.JoinHostPort(host, port)
	moved = p.server != r.params.server
	old := r.params
	r.params = p
	if err := r.saveParamsLocked(); err != nil {
		r.params = old
		return false, err
	}
	return moved, nil
}

func (r *Reporter) currentParams() []jt808.Param {
	r.mu.Lock()
	defer r.mu.Unlock()
	host, port, _ := net.SplitHostPort(r.params.server)
	pn, _ := strconv.Atoi(port)
	return []jt808.Param{
		jt808.DWORDParam(jt808.ParamHeartbeat, uint32(r.params.heartbeat/time.Second)),
		jt808.DWORDParam(jt808.ParamReportInterval, uint32(r.params.interval/time.Second)),
		jt808.StringParam(jt808.ParamMainServer, host),
		jt808.DWORDParam(jt808.ParamServerTCPPort, uint32(pn)),
		jt808.DWORDParam(jt808.ParamTurnAngle, uint32(r.cfg.TurnDeg)),
	}
}
