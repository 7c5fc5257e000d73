package dimse_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
	"lifeline/dicom/phantom"
	"lifeline/dicom/spool"
	"lifeline/internal/peers"
)

// storescuOption is the storescu switch that proposes a transfer syntax (PEERS.md);
// syntaxes without one are sent with our SCU instead.
var storescuOption = map[string]string{
	dicom.ImplicitVRLittleEndian:         "-xi",
	dicom.ExplicitVRLittleEndian:         "-xe",
	dicom.ExplicitVRBigEndian:            "-xb",
	dicom.DeflatedExplicitVRLittleEndian: "-xd",
	dicom.JPEGBaseline:                   "-xy",
	dicom.JPEGExtended:                   "-xx",
	dicom.JPEGLosslessSV1:                "-xs",
	dicom.JPEGLSLossless:                 "-xt",
	dicom.JPEGLSNearLossless:             "-xu",
	dicom.JPEG2000Lossless:               "-xv",
	dicom.JPEG2000:                       "-xw",
	dicom.RLELossless:                    "-xr",
	dicom.MPEG2MainML:                    "-xm",
	dicom.MPEG2MainHL:                    "-xh",
	dicom.MPEG4HP41:                      "-xn",
	dicom.MPEG4HP41BD:                    "-xl",
	dicom.MPEG4HP422D:                    "-x2",
	dicom.MPEG4HP423D:                    "-x3",
	dicom.MPEG4Stereo:                    "-xo",
	dicom.HEVCMain:                       "-x4",
	dicom.HEVCMain10:                     "-x5",
}

// TestEveryTransferSyntaxFromStoreSCU sends one instance in each transfer syntax that
// storescu can propose, in one storescu run with a negotiation profile (one
// presentation context per syntax), to the box and to storescp +B (which writes the
// data set as received), and checks the box spooled the same bytes in the same syntax.
func TestEveryTransferSyntaxFromStoreSCU(t *testing.T) {
	p := peers.Need(t, "storescu", "storescp")
	storescu, storescp := p[0], p[1]
	b := startBox(t, dimse.SCPConfig{}, spool.Config{})
	refPort, refDir := startStoreSCP(t, storescp, "+B")
	dir := t.TempDir()
	var profile strings.Builder
	var contexts strings.Builder
	profile.WriteString("[[TransferSyntaxes]]\n")
	sent := map[string]string{} // SOP Instance UID → transfer syntax
	var paths []string
	n := 0
	for _, ts := range dicom.StorableTransferSyntaxes {
		if _, ok := storescuOption[ts]; !ok {
			continue
		}
		n++
		fmt.Fprintf(&profile, "[TS%d]\nTransferSyntax1 = %s\n", n, ts)
		fmt.Fprintf(&contexts, "PresentationContext%d = %s\\TS%d\n", n, dicom.CTImageStorage, n)
		sop := phantom.UID("2.25.500", n)
		sent[sop] = ts
		paths = append(paths, writeFile(t, dir, sop+".dcm", phantom.File(phantom.Spec{TransferSyntaxUID: ts, SOPInstanceUID: sop, StudyUID: "2.25.500", Fill: byte(n)})))
	}
	profile.WriteString("[[PresentationContexts]]\n[AllSyntaxes]\n" + contexts.String())
	profile.WriteString("[[Profiles]]\n[Every]\nPresentationContexts = AllSyntaxes\n")
	cfg := writeFile(t, t.TempDir(), "syntaxes.cfg", []byte(profile.String()))
	for _, port := range []string{b.port, refPort} {
		run(t, storescu, append([]string{"-xf", cfg, "Every", "-aec", "LIFELINE", "127.0.0.1", port}, paths...)...)
	}
	for sop, ts := range sent {
		inst, err := b.spool.Instance(sop)
		if err != nil {
			t.Fatalf("%s: %v", ts, err)
		}
		ours, meta := datasetOf(t, inst.Path)
		ref, refMeta := datasetOf(t, storescpFile(t, refDir, sop))
		if meta.TransferSyntaxUID != ts || refMeta.TransferSyntaxUID != ts {
			t.Errorf("stored in %s (storescp: %s), sent in %s", meta.TransferSyntaxUID, refMeta.TransferSyntaxUID, ts)
			continue
		}
		if !bytes.Equal(ours, ref) {
			t.Errorf("%s: spooled data set (%d bytes) differs from storescp's (%d bytes)", ts, len(ours), len(ref))
		}
	}
	if len(sent) != 21 {
		t.Errorf("sent %d syntaxes, want 21", len(sent))
	}
}

// TestOurSCUToStoreSCPByteIdentical sends every storable transfer syntax with our SCU
// (one association, each file in its own syntax) to storescp +B and to the box, and
// checks that both hold exactly the source data set bytes.
func TestOurSCUToStoreSCPByteIdentical(t *testing.T) {
	storescp := peers.Need(t, "storescp")[0]
	refPort, refDir := startStoreSCP(t, storescp, "+B")
	b := startBox(t, dimse.SCPConfig{}, spool.Config{})
	dir := t.TempDir()
	var files []dicom.File
	srcData := map[string][]byte{}
	for i, ts := range dicom.StorableTransferSyntaxes {
		sop := phantom.UID("2.25.600", i)
		p := writeFile(t, dir, sop+".dcm", phantom.File(phantom.Spec{TransferSyntaxUID: ts, SOPInstanceUID: sop, StudyUID: "2.25.600", Fill: byte(i)}))
		f, err := dicom.OpenFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		srcData[sop], _ = datasetOf(t, p)
	}
	for _, target := range []struct{ name, addr string }{{"storescp", "127.0.0.1:" + refPort}, {"box", b.addr}} {
		a, err := dimse.Dial(context.Background(), target.addr, "LIFELINETEST", "LIFELINE", dimse.ContextsFor(files), dimse.SCUOptions{})
		if err != nil {
			t.Fatalf("%s: %v", target.name, err)
		}
		if st, err := a.Echo(context.Background()); err != nil || st != dimse.StatusSuccess {
			t.Fatalf("%s: C-ECHO status 0x%04x, %v", target.name, st, err)
		}
		for _, f := range files {
			if !a.Accepts(f.Meta.SOPClassUID, f.Meta.TransferSyntaxUID) {
				// DCMTK 3.6.7 does not know the newest syntaxes (HTJ2K, 2022's
				// encapsulated uncompressed); the box must know all of them.
				if target.name == "box" {
					t.Errorf("box refused %s", f.Meta.TransferSyntaxUID)
				} else {
					t.Logf("storescp does not accept %s; compared with the source only", f.Meta.TransferSyntaxUID)
				}
				continue
			}
			st, err := a.Store(context.Background(), f)
			if err != nil || st != dimse.StatusSuccess {
				t.Fatalf("%s: C-STORE %s: status 0x%04x, %v", target.name, f.Meta.TransferSyntaxUID, st, err)
			}
		}
		if err := a.Release(); err != nil {
			t.Errorf("%s: release: %v", target.name, err)
		}
	}
	refSeen := 0
	for _, f := range files {
		sop := f.Meta.SOPInstanceUID
		inst, err := b.spool.Instance(sop)
		if err != nil {
			t.Fatal(err)
		}
		ours, _ := datasetOf(t, inst.Path)
		if !bytes.Equal(ours, srcData[sop]) {
			t.Errorf("box changed the data set of %s", f.Meta.TransferSyntaxUID)
		}
		if p := storescpFileMaybe(refDir, sop); p != "" {
			refSeen++
			ref, _ := datasetOf(t, p)
			if !bytes.Equal(ref, srcData[sop]) {
				t.Errorf("storescp received different bytes for %s than our SCU read from the file", f.Meta.TransferSyntaxUID)
			}
		}
	}
	if refSeen < 20 {
		t.Errorf("storescp stored only %d of %d instances", refSeen, len(files))
	}
	_ = fmt.Sprint
}
