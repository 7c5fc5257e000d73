package appliance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/quic-go/quic-go/http3"

	"lifeline/internal/peers"
	"lifeline/internal/trust"
)

// What one hub, or two on one PostgreSQL, take per second, end to end over the hub's
// HTTP/3 port as boxes reach it: enrolments (code issued, box key and request, code
// redeemed, certificate signed and stored) and upload chunks (64 KiB appends, each
// written, fsynced and its offset moved in the state). `make bench-hub` runs it;
// docs/multi-hub.md has the numbers.

// benchSetup is one or more running hubs on one kind of state.
type benchSetup struct {
	name string
	hubs []benchHub
}

type benchHub struct {
	hub *Hub
	url string
}

// benchSetups starts a hub on the embedded state, one on PostgreSQL, and two on one
// other PostgreSQL database, sharing their authority.
func benchSetups(b *testing.B) []benchSetup {
	one := func(dataDir string, st StateSection) benchHub {
		h, cfg := startHubIn(b, dataDir, func(c *HubConfig) { c.State = st })
		return benchHub{hub: h, url: "https://" + cfg.Server.Listen}
	}
	dir := b.TempDir()
	dsn := peers.Postgres(b)
	other := createDatabase(b, dsn, "bench2")
	a := one(filepath.Join(dir, "pg2-a"), StateSection{Postgres: other})
	copyAuthority(b, filepath.Join(dir, "pg2-a"), filepath.Join(dir, "pg2-b"))
	return []benchSetup{
		{"bolt/1hub", []benchHub{one(filepath.Join(dir, "bolt"), StateSection{})}},
		{"postgres/1hub", []benchHub{one(filepath.Join(dir, "pg1"), StateSection{Postgres: dsn})}},
		{"postgres/2hubs", []benchHub{a, one(filepath.Join(dir, "pg2-b"), StateSection{Postgres: other})}},
	}
}

// createDatabase makes a database on the server dsn names and returns its
// connection string.
func createDatabase(b *testing.B, dsn, name string) string {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		b.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func BenchmarkHub(b *testing.B) {
	setups := benchSetups(b)
	var seq atomic.Int64
	for _, s := range setups {
		b.Run("enrol/"+s.name, func(b *testing.B) { benchEnrol(b, s, &seq) })
	}
	for _, s := range setups {
		b.Run("chunks/"+s.name, func(b *testing.B) { benchChunks(b, s, &seq) })
	}
}

// benchEnrol enrols distinct boxes from 4 callers at once, spread over the hubs.
func benchEnrol(b *testing.B, s benchSetup, seq *atomic.Int64) {
	dir := b.TempDir()
	ctx := context.Background()
	b.SetParallelism(2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			h := s.hubs[int(n)%len(s.hubs)]
			id := "BENCH-" + strconv.FormatInt(n, 10)
			code, err := h.hub.devices.NewCode(ctx, id, time.Hour)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := trust.Enroll(ctx, h.url, code, filepath.Join(dir, id)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "enrolments/s")
}

// benchChunkSize is the size of one benchmark append: small, so that what is measured
// is the cost of an append (fsync, offset moved in the state), not bandwidth.
const benchChunkSize = 64 << 10

// benchChunks appends 64 KiB chunks to uploads of one box, four at once, each upload
// at one hub, the uploads spread over the hubs.
func benchChunks(b *testing.B, s benchSetup, seq *atomic.Int64) {
	ctx := context.Background()
	id := "BENCH-BOX-" + strconv.FormatInt(seq.Add(1), 10)
	code, err := s.hubs[0].hub.devices.NewCode(ctx, id, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	ident, err := trust.Enroll(ctx, s.hubs[0].url, code, filepath.Join(b.TempDir(), id))
	if err != nil {
		b.Fatal(err)
	}
	clients := make([]*http.Client, len(s.hubs))
	for i := range s.hubs {
		tr := &http3.Transport{TLSClientConfig: ident.ClientTLS()}
		b.Cleanup(func() { tr.Close() })
		clients[i] = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	chunk := bytes.Repeat([]byte("lifeline"), benchChunkSize/8)
	sum := sha256.Sum256(chunk)
	chunkDigest := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	b.SetBytes(benchChunkSize)
	b.SetParallelism(2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		n := seq.Add(1)
		i := int(n) % len(s.hubs)
		h, c := s.hubs[i], clients[i]
		location, err := benchCreateUpload(c, h.url, fmt.Sprintf("1.2.826.0.1.3680043.10.1818.%d", n))
		if err != nil {
			b.Error(err)
			return
		}
		var offset int64
		for pb.Next() {
			if err := benchAppend(c, h.url+location, offset, chunk, chunkDigest); err != nil {
				b.Error(err)
				return
			}
			offset += benchChunkSize
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "chunks/s")
}

// benchCreateUpload creates an upload of an instance too long to ever complete here,
// and returns its path.
func benchCreateUpload(c *http.Client, hubURL, sop string) (string, error) {
	req, _ := http.NewRequest(http.MethodPost, hubURL+"/api/v1/uploads", nil)
	digest := sha256.Sum256([]byte(sop))
	req.Header.Set("Upload-Length", strconv.Itoa(1<<31))
	req.Header.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(digest[:])+":")
	req.Header.Set("Dicom-SOP-Instance-UID", sop)
	req.Header.Set("Dicom-Study-Instance-UID", "1.2.826.0.1.3680043.10.1818")
	req.Header.Set("Upload-Complete", "?0")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create upload: %s %s", resp.Status, body)
	}
	return resp.Header.Get("Location"), nil
}

// benchAppend sends one chunk at offset.
func benchAppend(c *http.Client, uploadURL string, offset int64, chunk []byte, digest string) error {
	req, _ := http.NewRequest(http.MethodPatch, uploadURL, bytes.NewReader(chunk))
	req.Header.Set("Content-Type", "application/partial-upload")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	req.Header.Set("Upload-Complete", "?0")
	req.Header.Set("Content-Digest", digest)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("append at %d: %s %s", offset, resp.Status, body)
	}
	return nil
}
