package h264

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pion/rtp"
)

// Bounds on what a camera can make the depacketizer hold. A 4K IDR picture of a
// surveillance camera is well under 2 MB.
const (
	// MaxAccessUnitSize is the largest access unit kept; a larger one is dropped.
	MaxAccessUnitSize = 8 << 20
	// MaxNALUsPerAccessUnit bounds the NAL units of one picture (slices, SEI, ...).
	MaxNALUsPerAccessUnit = 1024
	// maxParameterSetSize bounds a kept SPS or PPS; real ones are tens of bytes.
	maxParameterSetSize = 1024
	// maxReorder is how far back a sequence number may be and still count as a late
	// packet; further back, the sender restarted its sequence.
	maxReorder = 100
)

// DepacketizerStats counts what the depacketizer saw, for the status page.
type DepacketizerStats struct {
	Packets     uint64 // RTP packets pushed
	AccessUnits uint64 // access units emitted
	Keyframes   uint64 // IDR access units emitted
	// Lost counts packets missing by sequence number.
	Lost uint64
	// Dropped counts access units not emitted: incomplete ones, and the pictures
	// after a loss that cannot be decoded before the next IDR.
	Dropped uint64
	// Unsupported counts packets of the RFC 6184 types the box does not take
	// (STAP-B, MTAP16, MTAP24, FU-B: interleaved mode) and reserved types.
	Unsupported uint64
	// Malformed counts packets whose payload did not parse.
	Malformed uint64
	// BFrames counts emitted access units with a B slice.
	BFrames uint64
	// NoParameterSets counts IDR pictures dropped because no SPS and PPS had been
	// seen, in band or from the SDP, so that no decoder could start from them.
	NoParameterSets uint64
}

// Depacketizer turns the RTP packets of one H.264 stream (RFC 6184, single NAL unit
// and non-interleaved modes) into access units. A picture ends at a packet with the
// marker bit or when the timestamp changes. After any loss it drops pictures until
// the next complete IDR picture, since a decoder cannot use them, and NeedKeyframe
// reports that meanwhile. It is not safe for concurrent use.
type Depacketizer struct {
	sps, pps []byte

	cur     []byte // the access unit being assembled, Annex B
	curTS   uint32
	curOpen bool // a packet of the current access unit has arrived
	broken  bool // the current access unit lost a part
	// startUnsure is set when packets were lost just before the current access unit
	// began: it is whole only if its first slice (first_mb_in_slice 0) is there.
	startUnsure bool
	nalus       int // NAL units in cur

	fuStart  int // offset in cur of the NAL unit an FU-A is rebuilding, or -1
	fuHeader byte

	lastSeq uint16
	haveSeq bool
	waitIDR bool
	stats   DepacketizerStats
}

// NewDepacketizer returns a depacketizer that waits for an IDR picture first.
func NewDepacketizer() *Depacketizer {
	return &Depacketizer{fuStart: -1, waitIDR: true}
}

// SetParameterSets gives the SPS and PPS known before the stream starts (from the
// SDP's sprop-parameter-sets). In-band ones replace them as they arrive.
func (d *Depacketizer) SetParameterSets(sps, pps []byte) {
	d.keepParameterSet(sps)
	d.keepParameterSet(pps)
}

// ParameterSets returns the latest SPS and PPS, or nil for one not seen yet.
func (d *Depacketizer) ParameterSets() (sps, pps []byte) { return d.sps, d.pps }

// NeedKeyframe reports whether the depacketizer is dropping pictures until the next
// IDR picture (at the start, and after a loss). A sender that can should ask the
// camera for one.
func (d *Depacketizer) NeedKeyframe() bool { return d.waitIDR }

// Stats returns the counts so far.
func (d *Depacketizer) Stats() DepacketizerStats { return d.stats }

// Push takes the next packet of the stream and calls emit with each access unit it
// completes (none, one, or two when a timestamp change ends one picture and a marker
// bit ends the next). The access unit's Data is only valid until emit returns. The
// error describes a packet that could not be used; the depacketizer has already dealt
// with it (by dropping the picture it belonged to) and takes the next packet.
func (d *Depacketizer) Push(p *rtp.Packet, emit func(AccessUnit)) error {
	d.stats.Packets++
	gap := false
	if d.haveSeq {
		switch diff := int16(p.SequenceNumber - d.lastSeq); {
		case diff <= 0 && diff > -maxReorder:
			return fmt.Errorf("h264: RTP sequence %d after %d: duplicate or reordered packet dropped", p.SequenceNumber, d.lastSeq)
		case diff > 1 || diff <= -maxReorder:
			// A gap, or a jump far back: the camera restarted its sequence.
			if diff > 1 {
				d.stats.Lost += uint64(diff - 1)
			}
			gap = true
			d.waitIDR = true
		}
	}
	d.haveSeq, d.lastSeq = true, p.SequenceNumber
	if d.curOpen && p.Timestamp != d.curTS {
		if gap {
			d.broken = true // what was lost may be the end of this picture
		}
		d.finish(emit)
	}
	if gap {
		if d.curOpen {
			d.broken = true // lost from the middle of this picture
		}
		// What was lost may also be the start of the picture this packet belongs
		// to: finish checks that it has its first slice.
		d.startUnsure = true
	}
	if !d.curOpen {
		d.curOpen, d.curTS = true, p.Timestamp
	}
	err := d.take(p.Payload)
	if err != nil {
		d.broken = true
	}
	if p.Marker {
		d.finish(emit)
	}
	return err
}

// take adds the NAL units of one RTP payload to the current access unit.
func (d *Depacketizer) take(payload []byte) error {
	if len(payload) == 0 {
		d.stats.Malformed++
		return errors.New("h264: empty RTP payload")
	}
	t := TypeOf(payload)
	if d.fuStart >= 0 && t != NALFUA {
		d.abortFU()
		d.broken = true
	}
	switch {
	case t >= 1 && t <= 23:
		return d.appendNALU(payload)
	case t == NALSTAPA:
		return d.takeSTAPA(payload)
	case t == NALFUA:
		return d.takeFUA(payload)
	case t == NALSTAPB || t == NALMTAP16 || t == NALMTAP24 || t == NALFUB:
		d.stats.Unsupported++
		d.broken = true // the NAL units it held belong to this picture
		return fmt.Errorf("h264: %s packet (interleaved mode) not supported", t)
	}
	d.stats.Unsupported++ // types 0, 30, 31: RFC 6184 §5.4 says ignore
	return nil
}

func (d *Depacketizer) takeSTAPA(payload []byte) error {
	rest := payload[1:]
	for len(rest) > 0 {
		if len(rest) < 2 {
			d.stats.Malformed++
			return fmt.Errorf("h264: STAP-A: %d stray bytes after the last NAL unit", len(rest))
		}
		n := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if n == 0 || n > len(rest) {
			d.stats.Malformed++
			return fmt.Errorf("h264: STAP-A: NAL unit of %d bytes in %d remaining", n, len(rest))
		}
		if err := d.appendNALU(rest[:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

func (d *Depacketizer) takeFUA(payload []byte) error {
	if len(payload) < 3 {
		d.stats.Malformed++
		return fmt.Errorf("h264: FU-A of %d bytes, need at least 3", len(payload))
	}
	indicator, header := payload[0], payload[1]
	start, end := header&0x80 != 0, header&0x40 != 0
	nalHeader := indicator&0xe0 | header&nalTypeMask
	switch {
	case start && end:
		d.stats.Malformed++
		return errors.New("h264: FU-A with both start and end bits")
	case start:
		if d.fuStart >= 0 {
			d.abortFU() // the previous fragmented NAL unit lost its end
			d.broken = true
		}
		if err := d.room(1 + len(payload) - 2); err != nil {
			return err
		}
		d.fuStart, d.fuHeader = len(d.cur), nalHeader
		d.cur = append(d.cur, startCode...)
		d.cur = append(d.cur, nalHeader)
	case d.fuStart < 0 || nalHeader != d.fuHeader:
		// The start fragment was lost, or this is another NAL unit's fragment.
		d.abortFU()
		d.broken = true
		return nil
	default:
		if err := d.room(len(payload) - 2); err != nil {
			d.abortFU()
			return err
		}
	}
	d.cur = append(d.cur, payload[2:]...)
	if end {
		nal := d.cur[d.fuStart+len(startCode):]
		d.fuStart = -1
		d.nalus++
		d.keepParameterSet(nal)
	}
	return nil
}

func (d *Depacketizer) abortFU() {
	if d.fuStart >= 0 {
		d.cur = d.cur[:d.fuStart]
		d.fuStart = -1
	}
}

// room checks that n more bytes and one more NAL unit fit the bounds.
func (d *Depacketizer) room(n int) error {
	if len(d.cur)+len(startCode)+n > MaxAccessUnitSize || d.nalus >= MaxNALUsPerAccessUnit {
		d.broken = true
		return fmt.Errorf("h264: access unit over %d bytes or %d NAL units", MaxAccessUnitSize, MaxNALUsPerAccessUnit)
	}
	return nil
}

func (d *Depacketizer) appendNALU(nal []byte) error {
	if err := d.room(len(nal)); err != nil {
		return err
	}
	d.cur = append(d.cur, startCode...)
	d.cur = append(d.cur, nal...)
	d.nalus++
	d.keepParameterSet(nal)
	return nil
}

// keepParameterSet keeps a copy of nal if it is a valid SPS or a PPS.
func (d *Depacketizer) keepParameterSet(nal []byte) {
	if len(nal) == 0 || len(nal) > maxParameterSetSize {
		return
	}
	switch TypeOf(nal) {
	case NALSPS:
		if _, err := ParseSPS(nal); err == nil {
			d.sps = append(d.sps[:0], nal...)
		}
	case NALPPS:
		d.pps = append(d.pps[:0], nal...)
	}
}

// finish ends the current access unit: it emits it when it is whole and decodable,
// and drops it otherwise.
func (d *Depacketizer) finish(emit func(AccessUnit)) {
	if d.fuStart >= 0 {
		d.abortFU()
		d.broken = true
	}
	au := AccessUnit{Data: d.cur, Timestamp: d.curTS}
	broken := d.broken
	unsure := d.startUnsure
	d.cur, d.curOpen, d.broken, d.startUnsure, d.nalus = d.cur[:0], false, false, false, 0
	c := au.inspect()
	hasSPS, hasPPS, hasVCL := c.sps, c.pps, c.vcl
	if unsure && !c.firstSlice {
		broken = true
	}
	switch {
	case broken:
		d.stats.Dropped++
		d.waitIDR = true
		return
	case !hasVCL:
		return // parameter sets or SEI on their own: kept above, nothing to show
	case d.waitIDR && !au.IDR:
		d.stats.Dropped++
		return
	}
	if au.IDR && (!hasSPS || !hasPPS) {
		if d.sps == nil || d.pps == nil {
			d.stats.NoParameterSets++
			d.stats.Dropped++
			d.waitIDR = true
			return
		}
		au.Data = d.withParameterSets(au.Data, !hasSPS, !hasPPS)
	}
	if au.IDR {
		d.waitIDR = false
		d.stats.Keyframes++
	}
	if au.BFrame {
		d.stats.BFrames++
	}
	d.stats.AccessUnits++
	emit(au)
}

// withParameterSets returns data with the kept SPS and/or PPS in front, after an
// access unit delimiter if data starts with one (H.264 requires it to come first).
func (d *Depacketizer) withParameterSets(data []byte, sps, pps bool) []byte {
	out := make([]byte, 0, len(data)+2*len(startCode)+len(d.sps)+len(d.pps))
	rest := data
	if nalus := SplitNALUs(data); len(nalus) > 0 && TypeOf(nalus[0]) == NALAUD {
		out = append(out, startCode...)
		out = append(out, nalus[0]...)
		rest = data[len(startCode)+len(nalus[0]):]
	}
	if sps {
		out = append(out, startCode...)
		out = append(out, d.sps...)
	}
	if pps {
		out = append(out, startCode...)
		out = append(out, d.pps...)
	}
	return append(out, rest...)
}
