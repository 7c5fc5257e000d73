package peers

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// part10 is a minimal DICOM Part 10 file (explicit VR little endian, Secondary
// Capture) with the identifiers Orthanc indexes, made here so that the test needs
// nothing but Orthanc and PostgreSQL.
func part10(sopInstanceUID string) []byte {
	const sc = "1.2.840.10008.5.1.4.1.1.7"
	const explicitLE = "1.2.840.10008.1.2.1"
	elem := func(buf *bytes.Buffer, group, element uint16, vr, value string) {
		if len(value)%2 == 1 {
			if vr == "UI" {
				value += "\x00"
			} else {
				value += " "
			}
		}
		binary.Write(buf, binary.LittleEndian, [2]uint16{group, element})
		buf.WriteString(vr)
		binary.Write(buf, binary.LittleEndian, uint16(len(value)))
		buf.WriteString(value)
	}
	var meta bytes.Buffer
	binary.Write(&meta, binary.LittleEndian, [2]uint16{0x0002, 0x0001})
	meta.WriteString("OB\x00\x00")
	binary.Write(&meta, binary.LittleEndian, uint32(2))
	meta.Write([]byte{0, 1})
	elem(&meta, 0x0002, 0x0002, "UI", sc)
	elem(&meta, 0x0002, 0x0003, "UI", sopInstanceUID)
	elem(&meta, 0x0002, 0x0010, "UI", explicitLE)
	var out bytes.Buffer
	out.Write(make([]byte, 128))
	out.WriteString("DICM")
	binary.Write(&out, binary.LittleEndian, [2]uint16{0x0002, 0x0000})
	out.WriteString("UL")
	binary.Write(&out, binary.LittleEndian, uint16(4))
	binary.Write(&out, binary.LittleEndian, uint32(meta.Len()))
	out.Write(meta.Bytes())
	elem(&out, 0x0008, 0x0016, "UI", sc)
	elem(&out, 0x0008, 0x0018, "UI", sopInstanceUID)
	elem(&out, 0x0008, 0x0060, "CS", "OT")
	elem(&out, 0x0010, 0x0010, "PN", "TEST^CLUSTER")
	elem(&out, 0x0010, 0x0020, "LO", "LL-18")
	elem(&out, 0x0020, 0x000D, "UI", "1.2.826.0.1.3680043.10.1018.1")
	elem(&out, 0x0020, 0x000E, "UI", "1.2.826.0.1.3680043.10.1018.1.1")
	return out.Bytes()
}

// TestOrthancClusterSharesOneDatabase: two Orthanc processes on one PostgreSQL
// database. An instance stored through node 0 is listed by node 1, which gives back
// the very file sent; stored again through node 1 (the same SOP Instance UID, as a
// second hub delivering the same study would), it is still held once.
func TestOrthancClusterSharesOneDatabase(t *testing.T) {
	nodes := OrthancCluster(t, Postgres(t), "orthanc", 2)
	file := part10("1.2.826.0.1.3680043.10.1018.1.1.1")
	store(t, nodes[0], file)
	ids := instances(t, nodes[1])
	if len(ids) != 1 {
		t.Fatalf("node 1 lists %v after node 0 stored one instance", ids)
	}
	resp, err := http.Get(nodes[1].HTTPURL + "/instances/" + ids[0] + "/file")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, file) {
		t.Fatalf("the file read through node 1 (%d bytes) is not the one sent through node 0 (%d bytes)", len(got), len(file))
	}
	store(t, nodes[1], file)
	for i, n := range nodes {
		if again := instances(t, n); len(again) != 1 || again[0] != ids[0] {
			t.Fatalf("node %d lists %v after both nodes stored the instance, want only %s", i, again, ids[0])
		}
	}
}

func store(t *testing.T, n OrthancNode, file []byte) {
	t.Helper()
	resp, err := http.Post(n.HTTPURL+"/instances", "application/dicom", bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("store through %s: %s %s", n.HTTPURL, resp.Status, body)
	}
}

func instances(t *testing.T, n OrthancNode) []string {
	t.Helper()
	resp, err := http.Get(n.HTTPURL + "/instances")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ids []string
	if err := json.NewDecoder(resp.Body).Decode(&ids); err != nil {
		t.Fatal(err)
	}
	return ids
}
