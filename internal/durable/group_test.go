package durable

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// TestGroupCommitsEveryCallerOnceAndAlone checks Group's promise to its callers:
// every successful write is committed exactly once and survives a reopen, a failing
// or panicking fn gets its own error and writes nothing, and the others in its batch
// are committed regardless.
func TestGroupCommitsEveryCallerOnceAndAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.db")
	s, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	const callers = 64
	refused := errors.New("refused")
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Group(func(tx *Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("k"))
				if err != nil {
					return err
				}
				key := []byte(fmt.Sprint(i))
				// Counting in the stored value shows a write applied twice.
				n := 0
				if v := b.Get(key); v != nil {
					n = int(v[0])
				}
				if err := b.Put(key, []byte{byte(n + 1)}); err != nil {
					return err
				}
				switch i % 16 {
				case 5:
					return refused
				case 11:
					panic("a bug in one caller")
				}
				return nil
			})
		}()
	}
	wg.Wait()
	s.Close()

	s, err = Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range callers {
		v, getErr := s.Get("k", []byte(fmt.Sprint(i)))
		switch i % 16 {
		case 5:
			if !errors.Is(errs[i], refused) || !errors.Is(getErr, ErrNotFound) {
				t.Errorf("caller %d: err %v, stored %v (%v); want its own refusal and nothing stored", i, errs[i], v, getErr)
			}
		case 11:
			if errs[i] == nil || !errors.Is(getErr, ErrNotFound) {
				t.Errorf("caller %d panicked: err %v, stored %v (%v); want an error and nothing stored", i, errs[i], v, getErr)
			}
		default:
			if errs[i] != nil || getErr != nil || len(v) != 1 || v[0] != 1 {
				t.Errorf("caller %d: err %v, stored %v (%v); want its write committed once", i, errs[i], v, getErr)
			}
		}
	}
}

// BenchmarkCommit compares one transaction per write (Update) with group commit
// (Group) for writers in parallel, as the hub's upload handlers are: each op is one
// small durable write. Run with -cpu to vary the writers, e.g. -cpu 1,8,32.
func BenchmarkCommit(b *testing.B) {
	for _, how := range []string{"update", "group"} {
		b.Run(how, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "b.db"), 0)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			commit := s.Update
			if how == "group" {
				commit = s.Group
			}
			var next sync.Mutex
			n := 0
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					next.Lock()
					n++
					key := []byte(fmt.Sprint(n))
					next.Unlock()
					if err := commit(func(tx *Tx) error {
						bk, err := tx.CreateBucketIfNotExists([]byte("k"))
						if err != nil {
							return err
						}
						return bk.Put(key, make([]byte, 200))
					}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
