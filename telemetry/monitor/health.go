package monitor

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"lifeline/internal/service"
	"lifeline/telemetry/protocols"
)

// errNotRecognised is why a serial port that answers in no known protocol is not read.
var errNotRecognised = errors.New("no monitor protocol recognised")

// reportHealth turns the reader's state into the service health the crew sees: Ready
// while data flows, Degraded with what to check otherwise. The detail names the
// protocol and the port, and says what an operator can do about it.
func (r *Reader) reportHealth(h *service.Health, st Status, err error) {
	where := st.Device
	if where == "" {
		where = st.Port
	}
	what := strings.ToUpper(st.Protocol)
	if st.Protocol == "" || st.Protocol == protocols.Auto {
		what = "monitor"
	}
	note := refusalNote(st, time.Now())
	switch st.State {
	case StateConnected:
		h.Ready(fmt.Sprintf("%s on %s: receiving data%s", what, where, note))
	case StateSilent:
		h.Degraded(fmt.Sprintf("%s on %s: silent for %s — check the cable and that the monitor's data output is on%s",
			what, where, r.quiet().Round(time.Second), note), nil)
	case StateListening:
		h.Degraded(fmt.Sprintf("%s on %s: waiting for the monitor to connect — check that its HL7 server setting names this box%s", what, st.Port, note), nil)
	case StateDisconnected:
		h.Degraded(fmt.Sprintf("%s on %s: %s%s", what, where, r.disconnectAdvice(err), note), err)
	}
}

// disconnectAdvice says what to check when the port cannot be read.
func (r *Reader) disconnectAdvice(err error) string {
	switch {
	case errors.Is(err, errNotRecognised):
		return fmt.Sprintf("no known protocol heard — check that the monitor's data output is on and set to one of %s", strings.Join(names(r.cfg.Drivers), ", "))
	case errors.Is(err, fs.ErrNotExist):
		return "the port is gone — check that the cable and its USB adapter are plugged in"
	case r.endpoint.Network():
		return "not connected — check the network and the monitor's address"
	}
	return "cannot read the port — check the cable"
}
