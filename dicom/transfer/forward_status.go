package transfer

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// ForwarderStatus is the box's transfer state for /api/v1/status and `lifeline send`.
type ForwarderStatus struct {
	// State is idle, sending, hub unreachable, refused by hub, or blocked: every
	// queued study waits for an operator or for the hub (see each study's reason).
	State        string    `json:"state"`
	LastError    string    `json:"last_error,omitempty"`
	RetryAt      time.Time `json:"retry_at,omitzero"`
	BandwidthCap int64     `json:"bandwidth_cap_bps"` // 0 = none
	// Hub is the address the box sends to now, among its hub's (ForwarderConfig.Hub).
	Hub string `json:"hub"`
	// Transport is "quic", or "tcp" while UDP to the hub seems blocked and uploads
	// go over HTTPS on TCP.
	Transport        string          `json:"transport"`
	Connections      int             `json:"connections"` // live connections to the hub on Transport
	WireBytes        int64           `json:"wire_bytes"`
	ResentBytes      int64           `json:"resent_bytes"`
	RestartsFromZero int64           `json:"restarts_from_zero"`
	Studies          []StudyProgress `json:"studies"`
	DeadLetters      []DeadLetter    `json:"dead_letters,omitempty"`
}

// StudyProgress is one queued study's progress towards the hub.
type StudyProgress struct {
	StudyUID      string  `json:"study_uid"`
	PatientID     string  `json:"patient_id,omitempty"`
	Modality      string  `json:"modality,omitempty"`
	CallingAE     string  `json:"calling_ae,omitempty"`
	Priority      string  `json:"priority"`
	State         string  `json:"state"`
	Reason        string  `json:"reason,omitempty"`
	Instances     int     `json:"instances"`
	InstancesDone int     `json:"instances_done"`
	InstancesDead int     `json:"instances_dead,omitempty"`
	Bytes         int64   `json:"bytes"`
	BytesDone     int64   `json:"bytes_done"`
	Rate          float64 `json:"rate_bytes_per_second"`
	ETASeconds    float64 `json:"eta_seconds,omitempty"` // 0 when unknown
}

// DeadLetter is an instance the hub refused (or the box could not send), with the
// reason, waiting for an operator (Forwarder.Retry). Its study stays blocked meanwhile.
type DeadLetter struct {
	StudyUID       string    `json:"study_uid"`
	SOPInstanceUID string    `json:"sop_instance_uid"`
	Reason         string    `json:"reason"`
	At             time.Time `json:"at"`
}

// Status reports the forwarder's state and each queued study's progress, most
// urgent first.
func (f *Forwarder) Status() ForwarderStatus {
	f.mu.Lock()
	s := ForwarderStatus{State: f.state, LastError: f.lastErr, BandwidthCap: f.limit.bitsPerSecond(),
		WireBytes: f.wireBytes.Load(), ResentBytes: f.resent.Load(), RestartsFromZero: f.restartsFromZero.Load()}
	if time.Now().Before(f.pausedTo) {
		s.RetryAt = f.pausedTo
	}
	s.Hub, s.Transport, s.Connections = f.cfg.Hub.Current(), f.client.transport(), f.client.connections()
	blocked := 0
	for _, sj := range f.ordered() {
		p := StudyProgress{StudyUID: sj.study.StudyUID, PatientID: sj.study.PatientID, Modality: sj.study.Modality,
			CallingAE: sj.study.CallingAE, Priority: sj.prio.String(), State: sj.state.String(), Reason: sj.reason,
			Instances: len(sj.inst), Bytes: sj.bytesTotal, BytesDone: sj.bytesDone}
		if sj.stalls >= stallsBlocked {
			p.State = studyBlocked.String()
		}
		if p.State == studyBlocked.String() {
			blocked++
		}
		for _, ij := range sj.inst {
			switch ij.state {
			case instDone:
				p.InstancesDone++
			case instDead:
				p.InstancesDead++
			}
		}
		// A rate older than a few seconds says nothing about now.
		if time.Since(sj.lastAck) < 10*time.Second {
			p.Rate = sj.rate
			if sj.rate > 0 {
				p.ETASeconds = float64(sj.bytesTotal-sj.bytesDone) / sj.rate
			}
		}
		s.Studies = append(s.Studies, p)
	}
	if blocked > 0 && blocked == len(s.Studies) && s.State == "sending" {
		s.State = "blocked"
	}
	f.mu.Unlock()
	s.DeadLetters, _ = f.DeadLetters()
	return s
}

// DeadLetters lists the instances the hub refused or the box could not send, oldest
// first, each waiting for an operator's Retry. They are read from the box's store, so
// the list survives restarts.
func (f *Forwarder) DeadLetters() ([]DeadLetter, error) {
	var out []DeadLetter
	err := f.store.ForEach(bucketBoxInstances, func(k, v []byte) error {
		var bi boxInstance
		if json.Unmarshal(v, &bi) == nil && bi.Dead {
			out = append(out, DeadLetter{StudyUID: bi.StudyUID, SOPInstanceUID: string(k), Reason: bi.DeadReason, At: bi.DeadAt})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("transfer: read the dead-letter list: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}
