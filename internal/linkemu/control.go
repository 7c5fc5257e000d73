package linkemu

import (
	"errors"
	"slices"
	"time"
)

// actionKind is something the link does at a set time.
type actionKind int

const (
	actOutage    actionKind = iota // a scheduled outage of the profile starts
	actReaddress                   // the box gets a new address (during an outage)
)

type action struct {
	at   time.Time
	kind actionKind
}

// control runs the link's timed actions: the profile's outage schedule and the address
// changes of handovers. It is the only goroutine that acts on a timer, so that the
// order of events is explicit.
func (l *Link) control(start time.Time) {
	var queue []action
	if o := l.profile.Outages; o.For > 0 {
		queue = append(queue, action{at: start.Add(o.First), kind: actOutage})
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		slices.SortFunc(queue, func(a, b action) int { return a.at.Compare(b.at) })
		if len(queue) > 0 {
			timer.Reset(time.Until(queue[0].at))
		} else {
			timer.Stop()
		}
		select {
		case <-l.ctx.Done():
			return
		case a := <-l.actions:
			queue = append(queue, a)
		case <-timer.C:
			now := time.Now()
			for len(queue) > 0 && !queue[0].at.After(now) {
				a := queue[0]
				queue = queue[1:]
				queue = append(queue, l.run(a)...)
			}
		}
	}
}

// run performs a and returns the actions it schedules.
func (l *Link) run(a action) []action {
	o := l.profile.Outages
	switch a.kind {
	case actOutage:
		l.log.Info("linkemu: scheduled outage", "for", o.For, "new_address", o.NewAddress)
		l.Outage(o.For)
		var next []action
		if o.NewAddress {
			next = append(next, action{at: a.at.Add(readdressAt(o.For)), kind: actReaddress})
		}
		if o.Every > 0 {
			next = append(next, action{at: a.at.Add(o.Every), kind: actOutage})
		}
		return next
	case actReaddress:
		if _, err := l.ChangeBoxAddress(); err != nil && !errors.Is(err, errClosed) {
			l.log.Error("linkemu: box address change failed; the box keeps its old address", "err", err)
		}
	}
	return nil
}
