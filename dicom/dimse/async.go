package dimse

import "sync"

// Asynchronous operations (PS3.7 D.3.3.3, PS3.8 7.1.1.3): an SCU that proposes the
// Asynchronous Operations Window may send its next C-STORE before the response to the
// last one. The SCP then receives the next data set while earlier instances are being
// made durable, so that the network and the disk work at the same time, and several
// instances' fsyncs can share one journal commit. What is outstanding is bounded:
// MaxOperations (or fewer, if the SCU asks for fewer) per association; once that many
// wait for their commit, the SCP reads nothing more until one is answered, which holds
// the SCU back through TCP. Every response still follows its instance's durability, and
// the responses may come in any order (the SCU matches them by Message ID).

// window answers an SCU's Asynchronous Operations Window: we perform up to
// MaxOperations at once (fewer if it invokes fewer) and invoke none ourselves.
// Without the sub-item in the request, none goes in the answer: one at a time.
func (s *SCP) window(rq *AssociateRQ) *AsyncWindow {
	w := rq.AsyncWindow
	if w == nil {
		return nil
	}
	n := s.cfg.MaxOperations
	if w.Invoked != 0 && int(w.Invoked) < n {
		n = int(w.Invoked)
	}
	return &AsyncWindow{Invoked: 1, Performed: uint16(n)}
}

// operations bounds and joins the operations of one association performed apart from
// its reader.
type operations struct {
	slots chan struct{} // one per operation allowed at once
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error // the first operation's error (its response could not be sent)
}

func newOperations(window int) *operations {
	return &operations{slots: make(chan struct{}, max(window, 1))}
}

// async reports whether operations run apart from the reader.
func (o *operations) async() bool { return cap(o.slots) > 1 }

// start runs op apart from the reader once fewer than the window are outstanding.
func (o *operations) start(op func() error) {
	o.slots <- struct{}{}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		defer func() { <-o.slots }()
		if err := op(); err != nil {
			o.mu.Lock()
			if o.err == nil {
				o.err = err
			}
			o.mu.Unlock()
		}
	}()
}

// failed returns the first error of an operation run apart, if any.
func (o *operations) failed() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// wait returns once every operation started has been answered (or failed to be).
func (o *operations) wait() { o.wg.Wait() }
