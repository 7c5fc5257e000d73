package hubstatetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/internal/hubstate"
)

func code(device, hash string) hubstate.EnrolmentCode {
	return hubstate.EnrolmentCode{Hash: hash, Device: device, Expires: epoch.Add(time.Hour)}
}

func certificate(serial string) func(string) (hubstate.Certificate, error) {
	return func(string) (hubstate.Certificate, error) {
		return hubstate.Certificate{Serial: serial, NotAfter: epoch.AddDate(1, 0, 0)}, nil
	}
}

func testCodeEnrolsOnce(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	noErr(t, "issue code", s.IssueCode(bg, code("AMB-1", "h1")))
	dev, err := s.Device(bg, "AMB-1")
	noErr(t, "device", err)
	if dev.State != hubstate.StatePending {
		t.Fatalf("device after its code was issued: %+v, want pending", dev)
	}
	id, err := s.RedeemCode(bg, "h1", epoch, certificate("0a"))
	if err != nil || id != "AMB-1" {
		t.Fatalf("redeem: %q, %v", id, err)
	}
	dev, err = s.Device(bg, "AMB-1")
	noErr(t, "device", err)
	if dev.State != hubstate.StateActive || dev.Serial != "0a" || !dev.EnrolledAt.Equal(epoch) || !dev.NotAfter.Equal(epoch.AddDate(1, 0, 0)) {
		t.Fatalf("device after enrolment: %+v", dev)
	}
	id, err = s.RedeemCode(bg, "h1", epoch.Add(time.Minute), certificate("0b"))
	wantErr(t, "second redeem", err, hubstate.ErrCodeUsed)
	if id != "AMB-1" {
		t.Fatalf("second redeem named device %q, want AMB-1 for the audit log", id)
	}
	if dev, _ := s.Device(bg, "AMB-1"); dev.Serial != "0a" {
		t.Fatalf("a used code replaced the certificate: %+v", dev)
	}
}

// testCodeRedeemedOnceUnderRace presents one code many times at once, as boxes (or
// an attacker replaying a code) on several hubs could: one wins, once.
func testCodeRedeemedOnceUnderRace(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	noErr(t, "issue code", s.IssueCode(bg, code("AMB-2", "h2")))
	const racers = 16
	var issued, won atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, racers)
	for i := range racers {
		wg.Go(func() {
			_, err := s.RedeemCode(bg, "h2", epoch, func(string) (hubstate.Certificate, error) {
				issued.Add(1)
				return hubstate.Certificate{Serial: fmt.Sprintf("%x", i+1)}, nil
			})
			if err == nil {
				won.Add(1)
				return
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		wantErr(t, "losing redeem", err, hubstate.ErrCodeUsed)
	}
	if won.Load() != 1 || issued.Load() != 1 {
		t.Fatalf("%d redeems won and %d certificates were issued, want 1 and 1", won.Load(), issued.Load())
	}
}

func testFailedIssueLeavesCodeUnused(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	noErr(t, "issue code", s.IssueCode(bg, code("AMB-3", "h3")))
	signing := errors.New("authority cannot sign")
	_, err := s.RedeemCode(bg, "h3", epoch, func(string) (hubstate.Certificate, error) { return hubstate.Certificate{}, signing })
	wantErr(t, "redeem with a failing authority", err, signing)
	if dev, _ := s.Device(bg, "AMB-3"); dev.State != hubstate.StatePending {
		t.Fatalf("device after a failed issue: %+v, want pending", dev)
	}
	if _, err := s.RedeemCode(bg, "h3", epoch, certificate("0c")); err != nil {
		t.Fatalf("the code was used up by a failed issue: %v", err)
	}
}

func testExpiredAndUnknownCodes(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	noErr(t, "issue code", s.IssueCode(bg, code("AMB-4", "h4")))
	called := false
	never := func(string) (hubstate.Certificate, error) { called = true; return hubstate.Certificate{}, nil }
	_, err := s.RedeemCode(bg, "h4", epoch.Add(time.Hour+time.Second), never)
	wantErr(t, "expired code", err, hubstate.ErrCodeExpired)
	_, err = s.RedeemCode(bg, "no-such-hash", epoch, never)
	wantErr(t, "unknown code", err, hubstate.ErrCodeInvalid)
	if called {
		t.Fatal("a certificate was issued for a refused code")
	}
	if dev, _ := s.Device(bg, "AMB-4"); dev.State != hubstate.StatePending {
		t.Fatalf("device after an expired code: %+v", dev)
	}
}

func testRevokedStaysRevoked(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	noErr(t, "issue code", s.IssueCode(bg, code("AMB-5", "h5a")))
	noErr(t, "issue second code", s.IssueCode(bg, code("AMB-5", "h5b")))
	_, err := s.RedeemCode(bg, "h5a", epoch, certificate("0d"))
	noErr(t, "redeem", err)
	noErr(t, "revoke", s.RevokeDevice(bg, "AMB-5", epoch.Add(time.Minute)))
	dev, err := s.Device(bg, "AMB-5")
	noErr(t, "device", err)
	if dev.State != hubstate.StateRevoked || !dev.RevokedAt.Equal(epoch.Add(time.Minute)) {
		t.Fatalf("device after revocation: %+v", dev)
	}
	// Neither a code issued before the revocation nor a new one brings it back.
	_, err = s.RedeemCode(bg, "h5b", epoch.Add(2*time.Minute), certificate("0e"))
	wantErr(t, "redeem for a revoked device", err, hubstate.ErrRevoked)
	wantErr(t, "new code for a revoked device", s.IssueCode(bg, code("AMB-5", "h5c")), hubstate.ErrRevoked)
	if dev, _ := s.Device(bg, "AMB-5"); dev.State != hubstate.StateRevoked || dev.Serial != "0d" {
		t.Fatalf("revoked device changed: %+v", dev)
	}
	wantErr(t, "revoke an unknown device", s.RevokeDevice(bg, "AMB-404", epoch), hubstate.ErrUnknownDevice)
	_, err = s.Device(bg, "AMB-404")
	wantErr(t, "unknown device", err, hubstate.ErrNotFound)
}

func testDevicesInIDOrder(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	if devs, err := s.Devices(bg); err != nil || len(devs) != 0 {
		t.Fatalf("devices of empty state: %v, %v", devs, err)
	}
	for i, id := range []string{"AMB-3", "AMB-1", "CLINIC-1", "AMB-2"} {
		noErr(t, "issue code", s.IssueCode(bg, code(id, fmt.Sprintf("h%d", i))))
	}
	devs, err := s.Devices(bg)
	noErr(t, "devices", err)
	var ids []string
	for _, d := range devs {
		ids = append(ids, d.ID)
	}
	if fmt.Sprint(ids) != "[AMB-1 AMB-2 AMB-3 CLINIC-1]" {
		t.Fatalf("devices in order %v", ids)
	}
}

func testCancelledContextWritesNothing(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if err := s.IssueCode(ctx, code("AMB-6", "h6")); err == nil {
		t.Fatal("IssueCode with a cancelled context succeeded")
	}
	if _, err := s.CreateUpload(ctx, upload("u6", "AMB-6", sopUID(6), "aa", 10)); err == nil {
		t.Fatal("CreateUpload with a cancelled context succeeded")
	}
	if devs, _ := s.Devices(bg); len(devs) != 0 {
		t.Fatalf("a cancelled call wrote %+v", devs)
	}
	if _, err := s.Upload(bg, "u6"); !errors.Is(err, hubstate.ErrNotFound) {
		t.Fatalf("a cancelled call created an upload: %v", err)
	}
}
