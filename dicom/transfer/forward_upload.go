package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// confirmTo records that the hub holds offset bytes of ij and updates its study's
// rate (an exponentially weighted average over about three seconds).
func (f *Forwarder) confirmTo(ij *instJob, offset int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sj := ij.study
	n := offset - ij.confirmed
	ij.confirmed = offset
	sj.bytesDone += n
	now := time.Now()
	if sj.lastAck.IsZero() {
		sj.lastAck = now
		return
	}
	dt := max(now.Sub(sj.lastAck).Seconds(), 1e-3)
	w := 1 - math.Exp(-dt/3)
	sj.rate += w * (float64(n)/dt - sj.rate)
	sj.lastAck = now
}

// upload sends one instance, resuming from wherever the hub stands.
func (f *Forwarder) upload(ctx context.Context, ij *instJob) result {
	r := result{ij: ij}
	r.dead, r.err = f.uploadInstance(ctx, ij)
	return r
}

func (f *Forwarder) uploadInstance(ctx context.Context, ij *instJob) (dead string, err error) {
	inst := ij.inst
	sop := inst.SOPInstanceUID
	bi, err := f.loadBox(sop)
	if err != nil {
		return "", err
	}
	if bi.SHA256 != "" && bi.SHA256 != inst.SHA256 {
		bi = boxInstance{} // state of other bytes under the same UID
	}
	bi.StudyUID, bi.SHA256 = inst.StudyUID, inst.SHA256
	file, err := os.Open(inst.Path)
	if errors.Is(err, os.ErrNotExist) {
		return f.deadLetter(sop, bi, "spool file "+inst.Path+" is missing")
	}
	if err != nil {
		return "", err
	}
	defer file.Close()
	if fi, err := file.Stat(); err != nil {
		return "", err
	} else if fi.Size() != inst.Size {
		return f.deadLetter(sop, bi, fmt.Sprintf("spool file %s has %d bytes, its record says %d", inst.Path, fi.Size(), inst.Size))
	}

	// The upload's path: from the box's store, or from this run when the store has
	// not been committed since it was created.
	bi.URL = uploadPath(bi.URL)
	if bi.URL == "" {
		bi.URL = ij.url
	}
	var st uploadState
	if bi.URL != "" {
		st, err = f.client.offset(ctx, bi.URL)
		if he, ok := asHubError(err); ok && he.is(ProblemUnknownUpload) {
			bi.URL, ij.url, err = "", "", nil
		}
		if err != nil {
			return "", err
		}
	}
	if bi.URL == "" && (bi.Offset > 0 || ij.createCut) {
		// The hub confirmed bytes of it before, or may hold a first chunk whose
		// answer was lost: learn where it stands before sending.
		if st, err = f.client.create(ctx, inst); err != nil {
			if he, ok := asHubError(err); ok && he.permanent() {
				return f.deadLetter(sop, bi, he.Error())
			}
			return "", err
		}
		ij.url, ij.createCut = st.url, false
	}
	// Otherwise st.url is empty: the first chunk goes with the creation request.
	switch {
	case st.url == "":
	case st.offset == 0 && bi.Offset > 0:
		f.restartsFromZero.Add(1)
		f.m.restarts.Inc()
		f.log.Warn("transfer: hub lost an upload; starting it again from byte 0", "sop", sop, "had", bi.Offset)
	case st.offset < bi.Offset:
		f.log.Warn("transfer: hub holds less of an upload than it confirmed", "sop", sop, "confirmed", bi.Offset, "now", st.offset)
	}
	f.confirmTo(ij, st.offset)
	// The box's record of an upload is only its bookkeeping: creating the upload
	// again finds it with the hub's offset (its identity is the instance's), so it is
	// committed when the hub holds less than it says, every saveEvery bytes, and at
	// the end, not after every request: one commit per CT slice instead of three.
	lost := st.url != "" && st.offset < bi.Offset
	bi.URL, bi.Offset = st.url, st.offset
	if lost {
		if err := f.saveBox(sop, bi); err != nil {
			return "", err
		}
	}
	saved := bi.Offset

	compress := !f.cfg.NoCompression && (inst.TransferSyntax == "" || compressible(inst.TransferSyntax))
	buf := make([]byte, int64(f.cfg.ChunkSize)+f.tailFold())
	digestRetries := 0
	for !st.complete {
		off := st.offset
		n := int(min(int64(f.cfg.ChunkSize), inst.Size-off))
		if rest := inst.Size - off - int64(n); rest > 0 && rest <= f.tailFold() && int64(n)+rest <= MaxChunk {
			n += int(rest) // a small tail rides with the chunk before it: one request less
		}
		if _, err := file.ReadAt(buf[:n], off); err != nil && err != io.EOF {
			return "", fmt.Errorf("read spool file %s: %w", inst.Path, err)
		}
		end := off + int64(n)
		if again := min(end, ij.sentEnd) - off; again > 0 {
			f.resent.Add(again)
			f.m.resent.Add(float64(again))
		}
		ij.sentEnd = max(ij.sentEnd, end)
		var next uploadState
		var wire int
		creating := st.url == ""
		if creating {
			next, wire, err = f.client.createWith(ctx, inst, buf[:n], end == inst.Size, compress)
		} else {
			next, wire, err = f.client.appendChunk(ctx, sop, st.url, off, buf[:n], end == inst.Size, compress)
		}
		f.wireBytes.Add(int64(wire))
		f.m.wire.Add(float64(wire))
		if creating && wire == 0 {
			ij.sentEnd = off // nothing went: the hub takes no bytes with a creation
		}
		if _, isHub := asHubError(err); creating && wire > 0 && err != nil && !isHub {
			ij.createCut = true
		}
		if err != nil {
			he, ok := asHubError(err)
			switch {
			case !ok:
				return "", err
			case he.is(ProblemChunkDigest) && digestRetries < 5:
				digestRetries++
				f.log.Warn("transfer: hub found a chunk corrupt; sending it again", "sop", sop, "offset", off)
				continue
			case he.is(ProblemOffset) && he.offset >= 0 && !creating:
				f.confirmTo(ij, he.offset)
				st.offset = he.offset
				bi.Offset = he.offset
				continue
			case he.is(ProblemUnknownUpload):
				bi.URL, ij.url = "", ""
				f.saveBox(sop, bi)
				return "", err
			case he.is(ProblemDigest):
				bi.DigestFailures++
				bi.URL, bi.Offset, ij.url = "", 0, ""
				f.confirmTo(ij, 0)
				if bi.DigestFailures >= f.cfg.MaxDigestFailures {
					return f.deadLetter(sop, bi, fmt.Sprintf("hub found the whole instance corrupt %d times: %v", bi.DigestFailures, he))
				}
				f.saveBox(sop, bi)
				return "", err
			case he.permanent():
				return f.deadLetter(sop, bi, he.Error())
			}
			return "", err
		}
		digestRetries = 0
		if next.offset > off {
			f.m.chunks.Inc()
		}
		f.confirmTo(ij, next.offset)
		st = next
		ij.url = st.url
		bi.URL, bi.Offset = st.url, st.offset
		if st.complete {
			bi.Done = true
		}
		if bi.Done || bi.Offset-saved >= saveEvery {
			if err := f.saveBox(sop, bi); err != nil {
				return "", err
			}
			saved = bi.Offset
		}
	}
	if !bi.Done {
		bi.Done = true
		if err := f.saveBox(sop, bi); err != nil {
			return "", err
		}
	}
	return "", nil
}

// tailFold is the largest tail sent with the chunk before it instead of on its own,
// an eighth of a chunk and at most 64 KiB: a 525,312-byte CT slice goes in one
// 513 KiB append, not 512 KiB and then 1 KiB.
func (f *Forwarder) tailFold() int64 { return min(int64(f.cfg.ChunkSize)/8, 64<<10) }

// saveEvery is how many confirmed bytes of one upload the box may leave unrecorded.
const saveEvery = 4 << 20

func (f *Forwarder) deadLetter(sop string, bi boxInstance, reason string) (string, error) {
	bi.Dead, bi.DeadReason, bi.DeadAt = true, reason, time.Now().UTC()
	if err := f.saveBox(sop, bi); err != nil {
		return "", err
	}
	return reason, nil
}
