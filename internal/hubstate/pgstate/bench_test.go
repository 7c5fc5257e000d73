package pgstate

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/internal/hubstate"
	"lifeline/internal/hubstate/boltstate"
)

// engines opens, for a benchmark, the embedded engine and PostgreSQL on a throwaway
// cluster, so that one run compares them on the same machine.
func engines(b *testing.B) map[string]hubstate.Store {
	fresh := databases(b)
	pg, err := Open(bg, fresh(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pg.Close() })
	bolt, err := boltstate.Open(filepath.Join(b.TempDir(), "hub.db"), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bolt.Close() })
	return map[string]hubstate.Store{"bolt": bolt, "postgres": pg}
}

// BenchmarkRedeem measures enrolments: redemptions of distinct codes, one at a time
// and from 8 callers at once per core (as a hub answering many boxes would).
func BenchmarkRedeem(b *testing.B) {
	expires := time.Now().Add(time.Hour)
	var run atomic.Int64
	for name, s := range engines(b) {
		for _, parallel := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/parallel=%v", name, parallel), func(b *testing.B) {
				prefix := fmt.Sprintf("r%d-", run.Add(1))
				for i := range b.N {
					c := hubstate.EnrolmentCode{Hash: fmt.Sprint(prefix, i), Device: fmt.Sprint(prefix, i), Expires: expires}
					if err := s.IssueCode(bg, c); err != nil {
						b.Fatal(err)
					}
				}
				cert := func(string) (hubstate.Certificate, error) {
					return hubstate.Certificate{Serial: "01", NotAfter: expires}, nil
				}
				var next atomic.Int64
				redeem := func() {
					i := next.Add(1) - 1
					if _, err := s.RedeemCode(bg, fmt.Sprint(prefix, i), time.Now(), cert); err != nil {
						b.Error(err)
					}
				}
				b.ResetTimer()
				if !parallel {
					for range b.N {
						redeem()
					}
				} else {
					b.SetParallelism(8)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							redeem()
						}
					})
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "redeems/s")
			})
		}
	}
}

// BenchmarkAdvance measures upload chunks: offset moves of uploads in progress, from
// 8 callers at once per core, each on its own upload as boxes are.
func BenchmarkAdvance(b *testing.B) {
	var run atomic.Int64
	for name, s := range engines(b) {
		b.Run(name, func(b *testing.B) {
			prefix := fmt.Sprintf("u%d-", run.Add(1))
			var uploads atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				id := fmt.Sprint(prefix, uploads.Add(1))
				u := hubstate.Upload{ID: id, Device: "AMB-1", SOPInstanceUID: id, StudyUID: "1.2.3", Length: 1 << 40, SHA256: "aa"}
				if _, err := s.CreateUpload(bg, u); err != nil {
					b.Error(err)
					return
				}
				var at int64
				for pb.Next() {
					if _, err := s.AdvanceUpload(bg, id, at, at+65536); err != nil {
						b.Error(err)
						return
					}
					at += 65536
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "chunks/s")
		})
	}
}

// BenchmarkArchiveStudy measures archiving instances of CT-sized studies (200
// instances, each manifest sent first), from 8 callers at once per core, each its own
// box: every archive recomputes its study's milestones, so this is the cost a study's
// size adds to each instance.
func BenchmarkArchiveStudy(b *testing.B) {
	const perStudy = 200
	var run atomic.Int64
	for name, s := range engines(b) {
		b.Run(name, func(b *testing.B) {
			prefix := fmt.Sprintf("s%d-", run.Add(1))
			var boxes atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				box := fmt.Sprint(prefix, "AMB-", boxes.Add(1))
				var study string
				for i := 0; pb.Next(); i++ {
					n := i % perStudy
					if n == 0 {
						study = fmt.Sprint(box, ".", i)
						m := hubstate.Manifest{StudyUID: study, Device: box, Instances: map[string]string{}, At: time.Now()}
						for j := range perStudy {
							m.Instances[fmt.Sprint(study, ".", j)] = "aa"
						}
						if _, err := s.RecordManifest(bg, m); err != nil {
							b.Error(err)
							return
						}
					}
					sop := fmt.Sprint(study, ".", n)
					u := hubstate.Upload{ID: sop, Device: box, SOPInstanceUID: sop, StudyUID: study, Length: 1, SHA256: "aa"}
					if _, err := s.CreateUpload(bg, u); err != nil {
						b.Error(err)
						return
					}
					now := time.Now()
					if _, err := s.ArchiveInstance(bg, sop, hubstate.Instance{SOPInstanceUID: sop, StudyUID: study, Device: box,
						Size: 1, SHA256: "aa", ReceivedAt: now, VerifiedAt: now}, true); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
		})
	}
}
