package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"lifeline/internal/linkemu"
	"lifeline/internal/wait"
)

// runDirect measures path (b), what a clinic does today: storescu in the box
// namespace sends the study straight to Orthanc in the hub namespace by C-STORE over
// TCP across the same link. The clock starts when storescu starts and stops when
// Orthanc holds every instance.
//
// A TCP connection whose box address went away in a handover never recovers, and
// storescu has no resume. The benchmark stands in for the modality's retry: when
// Orthanc has gained no instance for e.stall (or storescu exits having failed), it
// ends storescu and starts it again with only the instances Orthanc lacks. That is
// kinder to (b) than a modality with a 30–60 s DIMSE timeout that sends the whole
// study again.
func runDirect(ctx context.Context, e *env, s *study, link *linkemu.Link, dir string) (*result, error) {
	r := &result{path: "direct"}
	orth, err := startOrthanc(ctx, link, e.orthanc, dir)
	if err != nil {
		return nil, err
	}
	defer orth.stop()

	size := map[string]int64{}
	sopOf := map[string]string{} // file → SOP Instance UID
	for i, f := range s.Files {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		size[f], sopOf[f] = fi.Size(), s.SOPs[i]
	}

	t0 := time.Now()
	deadline := t0.Add(e.timeout(s, link.Profile()))
	outages := scheduleOutages(ctx, link, e.outages, t0)
	defer outages.stop()
	pending := s.Files
	for attempt := 1; ; attempt++ {
		r.attempts = attempt
		args := append([]string{"-aet", modalityAE, "-aec", orthancTitle}, e.storescuArgs(s)...)
		args = append(args, link.HubAddr().String(), strconv.Itoa(orthancDICOM))
		args = append(args, pending...)
		send, err := startProc("storescu-direct", dir, link.Command(linkemu.Box, e.storescu, args...))
		if err != nil {
			return nil, err
		}
		// Watch Orthanc as ours.go does, until it holds the study or the association
		// has died or stalled.
		last, lastAt := -1, time.Now()
		var countErr error
		err = wait.Until(time.Until(deadline), func() bool {
			n, err := orth.count(ctx)
			switch {
			case err != nil:
				countErr = err
				return true
			case n >= len(s.Files):
				r.total = time.Since(t0)
				return true
			case n != last:
				last, lastAt = n, time.Now()
				return false
			}
			return send.exited() || time.Since(lastAt) > e.stall
		})
		if countErr != nil {
			send.kill()
			return nil, countErr
		}
		if err != nil {
			send.kill()
			return nil, fmt.Errorf("direct C-STORE did not finish within %v", e.timeout(s, link.Profile()))
		}
		if r.total > 0 {
			send.stop(10 * time.Second)
			break
		}
		// The association died or stalled: what did Orthanc keep?
		send.kill()
		have, err := orth.instances(ctx)
		if err != nil {
			return nil, err
		}
		var rest []string
		for _, f := range pending {
			if _, ok := have[sopOf[f]]; !ok {
				rest = append(rest, f)
			}
		}
		// The first instance Orthanc lacks was on the wire when the association
		// broke: its bytes go again.
		if len(rest) > 0 {
			r.resent += size[rest[0]]
		}
		fmt.Fprintf(os.Stderr, "  direct: storescu attempt %d ended with %d of %d instances in Orthanc (%s); starting again with the %d missing\n",
			attempt, len(s.Files)-len(rest), len(s.Files), exitText(send), len(rest))
		pending = rest
		if len(pending) == 0 {
			// Orthanc got the last one just as storescu was stopped.
			r.total = time.Since(t0)
			break
		}
	}
	r.outages = outages.stop()
	r.link = link.Stats()
	r.verifyErr = orth.verify(ctx, s)
	return r, nil
}

func exitText(p *proc) string {
	if p.err == nil {
		return "exit 0"
	}
	return p.err.Error()
}
