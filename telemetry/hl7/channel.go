package hl7

import (
	"strings"

	"lifeline/telemetry"
)

// PCD-01 names each observation's place in the device by OBX-4, its containment path
// MDS.VMD.channel.metric ("1.26.1.2": the second metric of channel 1 of VMD 26), and
// announces the devices themselves in OBX rows without a value type whose OBX-3 is an
// MDC_DEV_* code at MDS.VMD.0.0 or MDS.VMD.channel.0. The box keeps OBX-4 as the channel
// ID, so that two temperatures (1.26.1.1 and 1.26.1.2) or two respiration rates
// (airway 1.20.1.1, ECG impedance 1.6.1.1) stay two values.

// containment remembers the device rows of one message.
type containment struct {
	vmd   map[string]string // "1.20" → "MDC_DEV_ANALY_AWAY_MULTI_PARAM_VMD"
	chans map[string]string // "1.13.1" → "MDC_DEV_METER_PRESS_BLD_CHAN"
}

func newContainment() *containment {
	return &containment{vmd: map[string]string{}, chans: map[string]string{}}
}

// note records a device row (an OBX whose OBX-3 names MDC_DEV_*).
func (c *containment) note(path, device string) {
	p := strings.Split(strings.TrimSpace(path), ".")
	if len(p) < 3 {
		return
	}
	if p[2] == "0" {
		c.vmd[p[0]+"."+p[1]] = device
	} else {
		c.chans[p[0]+"."+p[1]+"."+p[2]] = device
	}
}

// device returns the name of the channel's or else the VMD's device row, "" if none.
func (c *containment) device(path string) (vmd, ch string) {
	p := strings.Split(strings.TrimSpace(path), ".")
	if len(p) >= 2 {
		vmd = c.vmd[p[0]+"."+p[1]]
	}
	if len(p) >= 3 {
		ch = c.chans[p[0]+"."+p[1]+"."+p[2]]
	}
	return vmd, ch
}

// channelOf builds the channel of an observation from its OBX-4, the device rows seen
// and OBX-17.2, where Lifeline's own exports carry the label the monitor showed. A path
// at the MDS itself (VMD and channel 0) names no channel.
func (c *containment) channelOf(obx4, obx17label string) telemetry.Channel {
	id := strings.TrimSpace(obx4)
	if p := strings.Split(id, "."); len(p) >= 3 && p[1] == "0" && p[2] == "0" {
		id = ""
	}
	ch := telemetry.Channel{ID: id, Label: strings.TrimSpace(obx17label)}
	if ch.Label == "" && id != "" {
		vmd, chn := c.device(id)
		ch.Label = deviceLabel(chn)
		if ch.Label == "" {
			ch.Label = deviceLabel(vmd)
		}
	}
	return ch
}

// deviceLabel shortens an MDC device reference id to the part that names the device:
// MDC_DEV_ANALY_AWAY_MULTI_PARAM_VMD → ANALY_AWAY_MULTI_PARAM.
func deviceLabel(ref string) string {
	ref = strings.ToUpper(strings.TrimSpace(ref))
	if ref == "" {
		return ""
	}
	ref = strings.TrimPrefix(ref, "MDC_DEV_")
	for _, suffix := range []string{"_VMD", "_CHAN", "_MDS"} {
		ref = strings.TrimSuffix(ref, suffix)
	}
	return ref
}

// markPrimary marks, for every code reported on several channels in one message, the
// channel a consumer wanting one value should read (telemetry.PrimaryOf):
//   - a respiration rate from the airway (capnograph) VMD, which counts breaths, before
//     one from ECG impedance, which also counts cardiac and motion artefact;
//   - a heart rate from the ECG VMD before one derived from pleth or pressure;
//   - otherwise the first channel in the message.
//
// A code on one channel is its own primary.
func markPrimary(nums []*telemetry.Numeric, vmdOf func(*telemetry.Numeric) string) {
	byCode := map[telemetry.Code][]*telemetry.Numeric{}
	var order []telemetry.Code
	for _, n := range nums {
		if _, seen := byCode[n.Code]; !seen {
			order = append(order, n.Code)
		}
		byCode[n.Code] = append(byCode[n.Code], n)
	}
	for _, code := range order {
		ns := byCode[code]
		best := ns[0]
		if want := preferredDevice(code); want != nil {
			for _, n := range ns {
				if want(vmdOf(n)) {
					best = n
					break
				}
			}
		}
		best.Channel.Primary = true
	}
}

func preferredDevice(c telemetry.Code) func(vmd string) bool {
	switch c {
	case telemetry.MDC_RESP_RATE, telemetry.MDC_AWAY_RESP_RATE:
		return func(vmd string) bool { return strings.Contains(vmd, "AWAY") || strings.Contains(vmd, "CO2") }
	case telemetry.MDC_ECG_HEART_RATE:
		return func(vmd string) bool { return strings.Contains(vmd, "ECG") && !strings.Contains(vmd, "RESP") }
	}
	return nil
}
