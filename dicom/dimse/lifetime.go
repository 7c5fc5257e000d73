package dimse

import "time"

// stopCause says why the box ends an association that did nothing wrong.
type stopCause struct {
	log    string // completes "aborting association: …"
	reason string // lifeline_dicom_failures_total reason; empty for none
}

var (
	stopShutdown  = stopCause{log: "service is shutting down"}
	stopLife      = stopCause{log: "it reached its maximum life (dicom.max_association_life)", reason: "association_life"}
	stopStoreIdle = stopCause{log: "it stored nothing for too long (dicom.store_idle_limit)", reason: "store_idle"}
	stopDisplaced = stopCause{log: "it was idle and a new association needed its place", reason: "displaced_idle"}
)

// run serves DIMSE messages until the association ends. Two timers bound how long it
// can hold one of the box's few association slots: its whole life (MaxLife), and the
// time it goes without storing anything (StoreIdleLimit), which a C-ECHO every minute
// (a keep-alive) does not reset. Either lets the message in progress finish.
func (a *scpAssoc) run() {
	life := time.AfterFunc(a.s.cfg.MaxLife, func() { a.c.stop(a.s.cfg.ShutdownGrace, stopLife) })
	defer life.Stop()
	a.storeIdle = time.AfterFunc(a.s.cfg.StoreIdleLimit, func() { a.c.stop(a.s.cfg.ShutdownGrace, stopStoreIdle) })
	defer a.storeIdle.Stop()
	for {
		a.c.setBusy(false)
		if a.c.isStopping() {
			a.ops.wait()
			a.stopped()
			return
		}
		ctxID, cmd, err := a.c.readCommand()
		if err == nil {
			err = a.dispatch(ctxID, cmd)
		}
		if err == nil {
			err = a.ops.failed()
		}
		if err != nil {
			// Answer what is outstanding before a release response or an abort.
			a.ops.wait()
			a.end(err)
			return
		}
	}
}

// stopped aborts an association the box chose to end, saying why.
func (a *scpAssoc) stopped() {
	cause := a.c.stopCause()
	if cause.reason != "" {
		a.log.Warn("aborting association: "+cause.log, "max_life", a.s.cfg.MaxLife, "store_idle_limit", a.s.cfg.StoreIdleLimit)
		a.s.fail(cause.reason)
	} else {
		a.log.Info("aborting association: " + cause.log)
	}
	a.c.abort(abortSourceProvider, abortNotSpecified)
	a.s.m.associations.WithLabelValues("aborted").Inc()
}
