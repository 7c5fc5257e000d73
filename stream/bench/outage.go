package main

import (
	"fmt"
	"slices"
	"time"

	"lifeline/internal/linkemu"
	"lifeline/stream/bench/whepviewer"
)

// outages is (d): the box streams the embedded clip and the monitor's vitals across
// handover (a 3 s outage, then a new box address) and tunnel (one outage of -tunnel,
// 30 s by default); the bench takes the link down itself once everything flows. It
// reports the time from the link's return to the first keyframe at the viewer, and
// the reliable vitals seqs the viewer never saw.
func (b *bench) outages() {
	for _, c := range []struct {
		profile linkemu.Profile
		outage  time.Duration
		newAddr bool
	}{{linkemu.Handover(), 3 * time.Second, true}, {linkemu.Tunnel(), b.tunnel, false}} {
		if !slices.Contains(b.outageProfiles, c.profile.Name) {
			continue
		}
		where := fmt.Sprintf("%s: %v outage", c.profile.Name, c.outage)
		if c.newAddr {
			where += ", new box address"
		}
		p := c.profile
		p.Outages = linkemu.Outages{}
		if err := b.outage(p, c.outage, c.newAddr, where); err != nil {
			b.failed("(d) after an outage", where, err)
		}
	}
}

func (b *bench) outage(p linkemu.Profile, outage time.Duration, newAddr bool, where string) error {
	s, err := startSystem(systemConfig{bin: b.bin, profile: &p, device: "AMB-BENCH-D", camera: "clip:", monitor: true})
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.waitConnected(60 * time.Second); err != nil {
		return err
	}
	v, err := s.watch(whepviewer.Hooks{})
	if err != nil {
		return err
	}
	defer v.Close()
	if err := waitFor(20*time.Second, "frames and vitals at the viewer", func() bool {
		st := v.Stats()
		return len(st.Keyframes) > 0 && len(st.Frames) > 30 && len(st.Vitals) > 0
	}); err != nil {
		return err
	}
	down := time.Now()
	if newAddr {
		s.link.Handover(outage)
	} else {
		s.link.Outage(outage)
	}
	back := down.Add(outage)
	// Picture back: the first keyframe after the link returned, then frames.
	err = waitFor(outage+30*time.Second, "a keyframe and 30 frames at the viewer after the outage", func() bool {
		st := v.Stats()
		return countAfter(st.Keyframes, back) > 0 && countAfter(st.Frames, back) >= 30
	})
	st := v.Stats()
	pub := s.publisher()
	session := fmt.Sprintf("box: %d session(s), %d ICE restart(s)", pub.NewSessions, pub.ICERestarts)
	if err != nil {
		b.add(row{what: "(d) picture back after the link returns", where: where, measured: "never", goal: "< 2 s",
			note: fmt.Sprintf("%s; viewer connection %s", session, st.Connection)})
	} else {
		first := st.Keyframes[len(st.Keyframes)-countAfter(st.Keyframes, back)]
		d := first.Sub(back)
		b.add(row{what: "(d) picture back after the link returns (first keyframe at the viewer)", where: where,
			measured: fmt.Sprintf("%.2f s", d.Seconds()), goal: "< 2 s", met: d < 2*time.Second, note: session})
	}
	// Vitals: read until the box's messages from after the outage have arrived.
	_ = waitFor(20*time.Second, "reliable vitals read after the outage", func() bool {
		st := v.Stats()
		return len(st.Vitals) > 0 && st.Vitals[len(st.Vitals)-1].BoxTime.After(back.Add(2*time.Second))
	})
	st = v.Stats()
	lost, dup, during := 0, 0, 0
	for i, m := range st.Vitals {
		if i > 0 {
			switch d := int64(m.Seq) - int64(st.Vitals[i-1].Seq); {
			case d > 1:
				lost += int(d - 1)
			case d < 1:
				dup++
			}
		}
		if m.BoxTime.After(down) && m.BoxTime.Before(back) {
			during++
		}
	}
	gap := "no wave chunk after the outage"
	for _, w := range st.Waves {
		if w.BoxTime.After(down.Add(500 * time.Millisecond)) {
			gap = fmt.Sprintf("first wave chunk read after the outage began: gap=%v", w.Gap)
			break
		}
	}
	if len(st.Vitals) == 0 {
		return fmt.Errorf("no reliable vitals at the viewer")
	}
	measured, resumed := fmt.Sprint(lost), st.Vitals[len(st.Vitals)-1].BoxTime.After(back)
	if !resumed {
		measured = fmt.Sprintf("%d, but none read after the outage arrived", lost)
	}
	b.add(row{what: "(d) reliable vitals lost across the outage (holes in seq at the viewer)", where: where,
		measured: measured, goal: "0", met: lost == 0 && resumed,
		note: fmt.Sprintf("seq %d..%d, %d read during the outage, %d out of order or repeated; %s",
			st.Vitals[0].Seq, st.Vitals[len(st.Vitals)-1].Seq, during, dup, gap)})
	return nil
}

func countAfter(ts []time.Time, from time.Time) int {
	n := 0
	for _, x := range ts {
		if x.After(from) {
			n++
		}
	}
	return n
}
