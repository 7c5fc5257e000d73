package dispatch

import (
	"time"

	"lifeline/dispatch/jt808"
)

// command handles one platform command and answers it. An error ends the session
// (the server moved, or the connection failed while answering).
func (r *Reporter) command(s *jt808.Session, m jt808.Message) error {
	r.count(func(s *Stats) { s.Commands++ })
	switch m.ID {
	case jt808.IDSetParams:
		sp, err := jt808.ParseSetParams(m.Body)
		if err != nil {
			r.cfg.Log.Warn("dispatch: bad parameter message", "err", err)
			return s.Respond(m, jt808.ResultBadMessage)
		}
		moved, err := r.applyParams(sp.Params)
		if err != nil {
			r.cfg.Log.Warn("dispatch: parameters refused", "err", err)
			return s.Respond(m, jt808.ResultFailure)
		}
		r.cfg.Log.Info("dispatch: parameters set by the platform", "count", len(sp.Params), "server", r.server())
		if err := s.Respond(m, jt808.ResultOK); err != nil {
			return err
		}
		if moved {
			return errMoved
		}
	case jt808.IDQueryParams:
		_, err := s.Send(jt808.IDParamsResponse, jt808.ParamsAnswer{Serial: m.Serial, Params: r.currentParams()}.Marshal())
		return err
	case jt808.IDLocationQuery:
		loc, ok := r.latestLocation()
		if !ok {
			return s.Respond(m, jt808.ResultFailure)
		}
		_, err := s.Send(jt808.IDLocationAnswer, jt808.LocationAnswer{Serial: m.Serial, Location: loc}.Marshal())
		return err
	case jt808.IDTemporaryTracking:
		tt, err := jt808.ParseTemporaryTracking(m.Body)
		if err != nil {
			return s.Respond(m, jt808.ResultBadMessage)
		}
		r.mu.Lock()
		r.tracking = tracking{interval: time.Duration(tt.Interval) * time.Second, until: r.mark.Time.Add(time.Duration(tt.Validity) * time.Second)}
		r.mu.Unlock()
		return s.Respond(m, jt808.ResultOK)
	case jt808.IDTextMessage:
		tm, err := jt808.ParseTextMessage(m.Body, m.Edition)
		if err != nil {
			return s.Respond(m, jt808.ResultBadMessage)
		}
		r.cfg.Log.Info("dispatch: text message for the crew", "text", tm.Text)
		if r.cfg.OnText != nil {
			r.cfg.OnText(tm)
		}
		return s.Respond(m, jt808.ResultOK)
	default:
		return s.Respond(m, jt808.ResultUnsupported)
	}
	return nil
}
