package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"lifeline/internal/linkemu"
)

// row is one (study, profile): both paths over identical, fresh links.
type row struct {
	study   *study
	profile linkemu.Profile // without its outages, which sched holds
	sched   linkemu.Outages
	ours    *result
	direct  *result
	errs    []string
}

// chunkSize is the forwarder's default chunk (ForwarderConfig.ChunkSize), which
// lifeline edge uses.
const chunkSize = 512 << 10

func mbps(bps int64) string { return fmt.Sprintf("%g Mbit/s", float64(bps)/1e6) }

func secs(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// goodput is study bytes / time / uplink rate.
func goodput(s *study, p linkemu.Profile, d time.Duration) float64 {
	return float64(s.Bytes*8) / d.Seconds() / float64(p.Up.RateBps)
}

func report(w io.Writer, rows []row, e *env, mb float64) {
	fmt.Fprintf(w, "\nbench-forward: %.0f MB studies; (a) storescu → lifeline edge → QUIC → lifeline hub → Orthanc (%s); (b) storescu → Orthanc by C-STORE/TCP over the same link\n", mb, e.deliver)
	fmt.Fprintln(w, "time: storescu starts → Orthanc holds every instance. goodput: study bytes ×8 / time / uplink rate (above 1.0 only by compression).")
	fmt.Fprintf(w, "(a) includes the box's study-complete wait: study_quiet_period = %v here (product default 30 s), then the forwarder's queue poll (≤ 1 s).\n", quietPeriod)
	fmt.Fprintln(w, "re-sent: (a) the forwarder's wire bytes sent again because the hub had not kept them (lifeline_forward_resent_bytes_total);")
	fmt.Fprintf(w, "         (b) bytes of the instances on the wire when storescu's association broke (restarted by the bench after %v without progress, missing instances only).\n\n", e.stall)
	fmt.Fprintln(w, "| study | profile | uplink | outages | (a) ours | (b) direct | (a) goodput | (b) goodput | (a) re-sent | (b) re-sent | (b)/(a) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, rw := range rows {
		a, b := rw.ours, rw.direct
		cell := func(r *result, f func(*result) string) string {
			if r == nil {
				return "failed"
			}
			return f(r)
		}
		ratio := "–"
		if a != nil && b != nil {
			ratio = fmt.Sprintf("**%.2f×**", b.total.Seconds()/a.total.Seconds())
		}
		outs := "none"
		if rw.sched.For > 0 {
			n := 0
			if a != nil {
				n = a.outages
			}
			m := 0
			if b != nil {
				m = b.outages
			}
			outs = fmt.Sprintf("%d / %d × %v", n, m, rw.sched.For)
		}
		fmt.Fprintf(w, "| %s, %d inst, %.1f MB | %s | %s, RTT %v, loss %g %% | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			rw.study.Short, len(rw.study.Files), float64(rw.study.Bytes)/1e6, rw.profile.Name, mbps(rw.profile.Up.RateBps),
			rw.profile.RTT(), rw.profile.Up.Loss*100, outs,
			cell(a, func(r *result) string { return secs(r.total) }), cell(b, func(r *result) string { return secs(r.total) }),
			cell(a, func(r *result) string { return fmt.Sprintf("%.2f", goodput(rw.study, rw.profile, r.total)) }),
			cell(b, func(r *result) string { return fmt.Sprintf("%.2f", goodput(rw.study, rw.profile, r.total)) }),
			cell(a, func(r *result) string { return kb(r.resent) }), cell(b, func(r *result) string { return kb(r.resent) }),
			ratio)
	}
	fmt.Fprintln(w, "\nDetails per run:")
	for _, rw := range rows {
		s, p := rw.study, rw.profile
		fmt.Fprintf(w, "- %s over %s (%s, zstd %.2f×; outages %s, timed from storescu's start):\n", s.Short, p.Name, s.Name, s.zstd, rw.sched)
		if a := rw.ours; a != nil {
			util := 0.0
			if a.linkPhase > 0 {
				util = float64(a.wire*8) / a.linkPhase.Seconds() / float64(p.Up.RateBps)
			}
			fmt.Fprintf(w, "  (a) storescu→box %s; first manifest at the hub +%s; manifest → all verified at the hub %s; Orthanc complete at %s.\n",
				secs(a.local), secs(a.forwardStart), secs(a.linkPhase), secs(a.total))
			fmt.Fprintf(w, "      wire %.1f MB (%.2f× smaller than the study), link use while forwarding %.0f %% of the uplink; re-sent %s; restarts from 0: %d; hub duplicates %d, corrupt chunks %d; uplink IP %.1f MB, %d packets dropped; Orthanc MD5 check: %s\n",
				float64(a.wire)/1e6, float64(s.Bytes)/float64(max(a.wire, 1)), util*100, kb(a.resent), a.restarts, a.duplicates, a.corrupt,
				float64(a.link.Up.Bytes)/1e6, a.link.Up.Dropped(), verdict(a.verifyErr))
		}
		if b := rw.direct; b != nil {
			fmt.Fprintf(w, "  (b) %d storescu run(s); re-sent %s; uplink IP %.1f MB, %d packets dropped; Orthanc MD5 check: %s\n",
				b.attempts, kb(b.resent), float64(b.link.Up.Bytes)/1e6, b.link.Up.Dropped(), verdict(b.verifyErr))
		}
		for _, e := range rw.errs {
			fmt.Fprintf(w, "  FAILED %s\n", e)
		}
	}
	fmt.Fprintln(w, "\nGoals (issue 4):")
	for _, rw := range rows {
		a, b := rw.ours, rw.direct
		if a == nil {
			continue
		}
		switch {
		case rw.profile.Name == "5g-urban":
			util := 0.0
			if a.linkPhase > 0 {
				util = float64(a.wire*8) / a.linkPhase.Seconds() / float64(rw.profile.Up.RateBps)
			}
			fmt.Fprintf(w, "- 5g-urban %s: link use before compression (wire bytes / forwarding time / rate) %.0f %% (goal ≥ 90 %%): %s\n",
				rw.study.Short, util*100, pass(util >= 0.9))
		case rw.sched.For > 0:
			fmt.Fprintf(w, "- %s %s: re-sent %s over %d outage(s), %s per outage (goal ≤ one %d KiB chunk): %s\n",
				rw.profile.Name, rw.study.Short, kb(a.resent), a.outages, perOutage(a), chunkSize>>10,
				pass(a.outages == 0 || a.resent <= int64(a.outages)*chunkSize))
		}
		if rw.study.Short == "ct-raw" && b != nil {
			r := b.total.Seconds() / a.total.Seconds()
			fmt.Fprintf(w, "- %s uncompressed CT: (b)/(a) = %.2f× (goal ≥ 2×): %s\n", rw.profile.Name, r, pass(r >= 2))
		}
	}
}

func perOutage(r *result) string {
	if r.outages == 0 {
		return "no outage met"
	}
	return kb(r.resent / int64(r.outages))
}

func kb(n int64) string {
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%d KiB", (n+512)>>10)
}

func verdict(err error) string {
	if err == nil {
		return "every instance, data set as sent"
	}
	return "FAILED: " + strings.TrimSpace(err.Error())
}

func pass(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
