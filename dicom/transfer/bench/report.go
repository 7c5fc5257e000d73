package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"lifeline/internal/linkemu"
)

// row is one (study, profile): both paths over identical, fresh links, several runs.
type row struct {
	study   *study
	profile linkemu.Profile // without its outages, which sched holds
	sched   linkemu.Outages
	ours    []*result
	direct  []*result
	errs    []string
}

func mbps(bps int64) string { return fmt.Sprintf("%g Mbit/s", float64(bps)/1e6) }

// spread is min / median / max of some runs.
type spread struct{ min, med, max float64 }

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	v = slices.Clone(v)
	slices.Sort(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return spread{v[0], med, v[len(v)-1]}
}

func (s spread) String() string { return fmt.Sprintf("%.1f / %.1f / %.1f", s.min, s.med, s.max) }
func (s spread) pct() string {
	return fmt.Sprintf("%.0f / %.0f / %.0f %%", s.min*100, s.med*100, s.max*100)
}
func (s spread) ratio() string { return fmt.Sprintf("%.2f / **%.2f** / %.2f×", s.min, s.med, s.max) }
func seconds(rs []*result) spread {
	return spreadOf(each(rs, func(r *result) float64 { return r.total.Seconds() }))
}

func each(rs []*result, f func(*result) float64) []float64 {
	var out []float64
	for _, r := range rs {
		out = append(out, f(r))
	}
	return out
}

// ipGoodput is uplink IP bytes ×8 over the time the forwarding used the uplink, per
// uplink rate.
func ipGoodput(r *result, p linkemu.Profile) float64 {
	if r.ipBusy <= 0 {
		return 0
	}
	return float64(r.ipBytes*8) / r.ipBusy.Seconds() / float64(p.Up.RateBps)
}

// ratios pairs run i of (b) with run i of (a): (b)/(a) per pair.
func ratios(rw row) spread {
	var v []float64
	for i := 0; i < len(rw.ours) && i < len(rw.direct); i++ {
		v = append(v, rw.direct[i].total.Seconds()/rw.ours[i].total.Seconds())
	}
	return spreadOf(v)
}

func report(w io.Writer, rows []row, e *env, mb float64) {
	fmt.Fprintf(w, "\nbench-forward: %.0f MB studies; (a) storescu → lifeline edge → QUIC → lifeline hub → Orthanc (%s); (b) storescu → Orthanc by C-STORE/TCP over the same link\n", mb, e.deliver)
	fmt.Fprintln(w, "time: storescu starts → Orthanc holds every instance; min / median / max of the runs, `sync` before each, the paths' order alternating.")
	fmt.Fprintln(w, "(a) runs at the product's defaults (study_quiet_period 30 s: the study is declared complete after Orthanc has it; forwarder defaults) but one:")
	fmt.Fprintln(w, "    [stream] enabled = false, a clinic's box without a camera (with the live stream on, the forwarder yields the uplink to it).")
	fmt.Fprintln(w, "(b)/(a): per pair of runs. IP goodput: uplink IP bytes ×8 / time from the forwarding's first to last uplink packet / uplink rate.")
	fmt.Fprintf(w, "re-sent: (a) wire bytes sent again because the hub had not kept them; (b) bytes of the instances on the wire when storescu's association broke (restarted after %v without progress).\n\n", e.stall)
	fmt.Fprintln(w, "| study | profile | uplink | outages | runs | (a) ours, s | (b) direct, s | (b)/(a) | (a) IP goodput | (a) re-sent, max | (b) re-sent, max |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, rw := range rows {
		outs := "none"
		if rw.sched.For > 0 {
			outs = fmt.Sprintf("%s × %v", strings.Trim(fmt.Sprint(each(rw.ours, func(r *result) float64 { return float64(r.outages) })), "[]"), rw.sched.For)
		}
		fmt.Fprintf(w, "| %s, %d inst, %.1f MB | %s | %s, RTT %v, loss %g %% | %s | %d/%d | %s | %s | %s | %s | %s | %s |\n",
			rw.study.Short, len(rw.study.Files), float64(rw.study.Bytes)/1e6, rw.profile.Name, mbps(rw.profile.Up.RateBps),
			rw.profile.RTT(), rw.profile.Up.Loss*100, outs, len(rw.ours), len(rw.direct),
			seconds(rw.ours), seconds(rw.direct), ratios(rw).ratio(),
			spreadOf(each(rw.ours, func(r *result) float64 { return ipGoodput(r, rw.profile) })).pct(),
			kb(int64(spreadOf(each(rw.ours, func(r *result) float64 { return float64(r.resent) })).max)),
			kb(int64(spreadOf(each(rw.direct, func(r *result) float64 { return float64(r.resent) })).max)))
	}
	fmt.Fprintln(w, "\nDetails per run:")
	for _, rw := range rows {
		s, p := rw.study, rw.profile
		fmt.Fprintf(w, "- %s over %s (%s, zstd %.2f×; outages %s, timed from storescu's start):\n", s.Short, p.Name, s.Name, s.zstd, rw.sched)
		for i, a := range rw.ours {
			fmt.Fprintf(w, "  (a) run %d: %s; storescu→box %s; uplink busy %s, IP %.1f MB (goodput %.0f %%), wire %.1f MB; re-sent %s; restarts from 0: %d; duplicates %d, corrupt chunks %d; %d packets dropped; Orthanc MD5 check: %s\n",
				i+1, secs(a.total), secs(a.local), secs(a.ipBusy), float64(a.ipBytes)/1e6, ipGoodput(a, p)*100, float64(a.wire)/1e6,
				kb(a.resent), a.restarts, a.duplicates, a.corrupt, a.link.Up.Dropped(), verdict(a.verifyErr))
		}
		for i, b := range rw.direct {
			fmt.Fprintf(w, "  (b) run %d: %s; %d storescu run(s); re-sent %s; uplink IP %.1f MB, %d packets dropped; Orthanc MD5 check: %s\n",
				i+1, secs(b.total), b.attempts, kb(b.resent), float64(b.link.Up.Bytes)/1e6, b.link.Up.Dropped(), verdict(b.verifyErr))
		}
		for _, e := range rw.errs {
			fmt.Fprintf(w, "  FAILED %s\n", e)
		}
	}
	goals(w, rows)
}

// goals checks the goals on the medians.
func goals(w io.Writer, rows []row) {
	fmt.Fprintln(w, "\nGoals (issue 17), on medians:")
	find := func(studyShort, profile string) *row {
		for i := range rows {
			if rows[i].study.Short == studyShort && rows[i].profile.Name == profile && len(rows[i].ours) > 0 {
				return &rows[i]
			}
		}
		return nil
	}
	for _, rw := range rows {
		if len(rw.ours) == 0 {
			continue
		}
		want := map[string]float64{"ct-raw": 2.5, "ct-jpeg": 1.2}[rw.study.Short]
		if len(rw.direct) > 0 && rw.sched.For == 0 && (rw.profile.Name == "5g-urban" || rw.profile.Name == "4g-rural") {
			r := ratios(rw).med
			fmt.Fprintf(w, "- %s %s: (b)/(a) = %.2f× (goal ≥ %.1f×): %s\n", rw.profile.Name, rw.study.Short, r, want, pass(r >= want))
		}
		g := spreadOf(each(rw.ours, func(r *result) float64 { return ipGoodput(r, rw.profile) })).med
		switch rw.profile.Name {
		case "5g-urban":
			fmt.Fprintf(w, "- 5g-urban %s: IP goodput %.0f %% of the uplink (goal ≥ 90 %%): %s\n", rw.study.Short, g*100, pass(g >= 0.9))
		case "4g-rural":
			fmt.Fprintf(w, "- 4g-rural %s: IP goodput %.0f %% of the uplink (goal ≥ 85 %%): %s\n", rw.study.Short, g*100, pass(g >= 0.85))
		}
		if rw.sched.For > 0 {
			base := find(rw.study.Short, "5g-urban")
			n := spreadOf(each(rw.ours, func(r *result) float64 { return float64(r.outages) })).med
			if base == nil || n == 0 {
				fmt.Fprintf(w, "- %s %s: outage cost needs a 5g-urban row of the same study and an outage met\n", rw.profile.Name, rw.study.Short)
				continue
			}
			cost := (seconds(rw.ours).med - seconds(base.ours).med) / n
			limit := rw.sched.For.Seconds() + 1
			fmt.Fprintf(w, "- %s %s: each %v outage cost %.1f s ((a) %.1f s with %.0f outage(s) against %.1f s without; goal ≤ %.0f s): %s\n",
				rw.profile.Name, rw.study.Short, rw.sched.For, cost, seconds(rw.ours).med, n, seconds(base.ours).med, limit, pass(cost <= limit))
		}
	}
}

func secs(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
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
