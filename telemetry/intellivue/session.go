package intellivue

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
)

// Session SPDU identifiers: the first byte of every user data.
const (
	SPDUConnect    = 0x0D // CN: association request
	SPDUAccept     = 0x0E // AC: association response, accepted
	SPDURefuse     = 0x0C // RF: association refused
	SPDUFinish     = 0x09 // FN: release request
	SPDUDisconnect = 0x0A // DN: release response
	SPDUAbort      = 0x19 // AB: abort
	SPDUData       = 0xE1 // data export: remote operations follow
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// The session and presentation envelopes below are fixed by the Data Export interface:
// the monitor matches them byte for byte (they carry the ACSE and presentation context
// object identifiers 1.2.840.10004.2.1... of the medical device data language). Only the
// user information (MDSEUserInfoStd) inside varies.
var (
	sessionData = mustHex("05 08 13 01 00 16 01 02 80 00 14 02 00 02")
	aarqPrefix  = mustHex(`31 80 a0 80 80 01 01 00 00 a2 80 a0 03 00 00 01 a4 80 30 80 02 01 01 06 04
		52 01 00 01 30 80 06 02 51 01 00 00 00 00 30 80 02 01 02 06 0c 2a 86 48 ce 14 02 01 00 00 00
		01 01 30 80 06 0c 2a 86 48 ce 14 02 01 00 00 00 02 01 00 00 00 00 00 00 61 80 30 80 02 01 01
		a0 80 60 80 a1 80 06 0c 2a 86 48 ce 14 02 01 00 00 00 03 01 00 00 be 80 28 80 06 0c 2a 86 48
		ce 14 02 01 00 00 00 01 01 02 01 02`)
	aarePrefix = mustHex(`31 80 a0 80 80 01 01 00 00 a2 80 a0 03 00 00 01 a5 80 30 80 80 01 00 81 02
		51 01 00 00 30 80 80 01 00 81 0c 2a 86 48 ce 14 02 01 00 00 00 02 01 00 00 00 00 61 80 30 80
		02 01 01 a0 80 61 80 a1 80 06 0c 2a 86 48 ce 14 02 01 00 00 00 03 01 00 00 a2 03 02 01 00 a3
		05 a1 03 02 01 00 be 80 28 80 02 01 02`)
	presentationTrailer = make([]byte, 16) // end-of-contents of the indefinite lengths
	releaseRequest      = mustHex("09 18 c1 16 61 80 30 80 02 01 01 a0 80 62 80 80 01 00 00 00 00 00 00 00 00 00")
	releaseResponse     = mustHex("0a 18 c1 16 61 80 30 80 02 01 01 a0 80 63 80 80 01 00 00 00 00 00 00 00 00 00")
	abortMessage        = mustHex(`19 2e 11 01 03 c1 29 a0 80 a0 80 30 80 02 01 01 06 02 51 01 00 00 00 00 61
		80 30 80 02 01 01 a0 80 64 80 80 01 01 00 00 00 00 00 00 00 00 00 00`)
	userInfoMarker = mustHex("be 80 28 80")
)

// appendLI appends a session-layer length indicator: one byte below 255, else 0xFF and
// two bytes.
func appendLI(b []byte, n int) []byte {
	if n < 255 {
		return append(b, byte(n))
	}
	return append(b, 0xFF, byte(n>>8), byte(n))
}

func readLI(r *reader) int {
	n := int(r.u8())
	if n == 0xFF {
		n = int(r.u16())
	}
	return n
}

// appendBERLen appends an ASN.1 definite length.
func appendBERLen(b []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n < 0x100:
		return append(b, 0x81, byte(n))
	}
	return append(b, 0x82, byte(n>>8), byte(n))
}

// Option bits of the poll profile.
const (
	PollOptDynCreate uint32 = 0x40000000 // P_OPT_DYN_CREATE_OBJECTS
	PollOptDynDelete uint32 = 0x20000000 // P_OPT_DYN_DELETE_OBJECTS

	PollExtNu1s   uint32 = 0x80000000 // POLL_EXT_PERIOD_NU_1SEC: numerics every second
	PollExtRTSA   uint32 = 0x08000000 // POLL_EXT_PERIOD_RTSA: real-time waves
	PollExtEnum   uint32 = 0x04000000 // POLL_EXT_ENUM
	attrPollProf  uint16 = 0x0001     // NOM_POLL_PROFILE_SUPPORT
	attrPollExt   uint16 = 0xF001     // NOM_ATTR_POLL_PROFILE_EXT
	mddlVersion1  uint32 = 0x80000000
	nomenVersion  uint32 = 0x40000000
	systemClient  uint32 = 0x80000000 // SYST_CLIENT
	systemServer  uint32 = 0x00800000 // SYST_SERVER
	startHot      uint32 = 0x20000000 // HOT_START
	profileRev1   uint32 = 0x80000000
	unlimitedBand uint32 = 0xFFFFFFFF
)

// UserInfo is MDSEUserInfoStd, the part of the association messages that varies.
type UserInfo struct {
	SystemType    uint32
	MinPollPeriod RelativeTime
	MaxMTURx      uint32
	MaxMTUTx      uint32
	Options       uint32 // poll profile options
	ExtOptions    uint32 // poll profile extension options
}

func (u UserInfo) marshal() []byte {
	var w writer
	w.u32(mddlVersion1)
	w.u32(nomenVersion)
	w.u32(0) // functional units
	w.u32(u.SystemType)
	w.u32(startHot)
	w.u16(0) // option list: count
	w.u16(0) //              length
	w.u16(1) // supported profiles: one attribute
	prof := w.mark()
	w.u16(attrPollProf)
	ava := w.mark()
	w.u32(profileRev1)
	w.u32(uint32(u.MinPollPeriod))
	w.u32(u.MaxMTURx)
	w.u32(u.MaxMTUTx)
	w.u32(unlimitedBand)
	w.u32(u.Options)
	w.u16(1) // optional packages: the extension
	pkg := w.mark()
	w.u16(attrPollExt)
	ext := w.mark()
	w.u32(u.ExtOptions)
	w.u16(0) // extension attributes: count
	w.u16(0) //                       length
	w.patch(ext)
	w.patch(pkg)
	w.patch(ava)
	w.patch(prof)
	return w.b
}

func parseUserInfo(b []byte) (UserInfo, error) {
	r := newReader(b, "user info")
	var u UserInfo
	r.u32() // protocol version
	r.u32() // nomenclature version
	r.u32() // functional units
	u.SystemType = r.u32()
	r.u32() // startup mode
	r.u16()
	r.bytes(int(r.u16())) // option list
	count, length := r.u16(), r.u16()
	prof := r.sub(int(length), "supported profiles")
	for i := 0; i < int(count) && prof.err == nil; i++ {
		id, l := prof.u16(), prof.u16()
		a := prof.sub(int(l), "profile")
		if id != attrPollProf {
			continue
		}
		a.u32()
		u.MinPollPeriod = RelativeTime(a.u32())
		u.MaxMTURx, u.MaxMTUTx = a.u32(), a.u32()
		a.u32()
		u.Options = a.u32()
		pc, pl := a.u16(), a.u16()
		pk := a.sub(int(pl), "optional packages")
		for j := 0; j < int(pc) && pk.err == nil; j++ {
			pid, plen := pk.u16(), pk.u16()
			p := pk.sub(int(plen), "package")
			if pid == attrPollExt {
				u.ExtOptions = p.u32()
			}
		}
		if a.err != nil {
			return u, a.err
		}
	}
	if r.err != nil {
		return u, r.err
	}
	return u, prof.err
}

func associationMessage(spdu byte, prefix []byte, u UserInfo) []byte {
	ui := u.marshal()
	pres := append([]byte(nil), prefix...)
	pres = append(pres, 0x81)
	pres = appendBERLen(pres, len(ui))
	pres = append(pres, ui...)
	pres = append(pres, presentationTrailer...)
	body := append([]byte(nil), sessionData...)
	body = append(body, 0xC1)
	body = appendLI(body, len(pres))
	body = append(body, pres...)
	out := appendLI([]byte{spdu}, len(body))
	return append(out, body...)
}

// AssociationRequest returns the association request (AARQ) the box sends.
func AssociationRequest(u UserInfo) []byte { return associationMessage(SPDUConnect, aarqPrefix, u) }

// AssociationResponse returns the monitor's acceptance (AARE).
func AssociationResponse(u UserInfo) []byte { return associationMessage(SPDUAccept, aarePrefix, u) }

// ParseAssociation decodes an association request or response: its SPDU type and the
// user information.
func ParseAssociation(b []byte) (spdu byte, u UserInfo, err error) {
	r := newReader(b, "association")
	spdu = r.u8()
	n := readLI(r)
	if r.err == nil && n != r.left() {
		return spdu, u, fmt.Errorf("intellivue: association length indicator %d, %d bytes follow", n, r.left())
	}
	i := bytes.Index(b, userInfoMarker)
	if i < 0 {
		return spdu, u, fmt.Errorf("intellivue: association without user information")
	}
	r.off = i + len(userInfoMarker)
	// An optional direct-reference OID, then the indirect reference INTEGER 2, then the
	// [1] single-ASN1-type tag with the user information.
	if r.u8() == 0x06 {
		r.bytes(int(r.u8()))
	} else {
		r.off--
	}
	if r.u8() != 0x02 || r.u8() != 0x01 || r.u8() != 0x02 || r.u8() != 0x81 {
		if r.err != nil {
			return spdu, u, r.err
		}
		return spdu, u, fmt.Errorf("intellivue: association user information not where expected (offset %d)", r.off)
	}
	l := int(r.u8())
	switch l {
	case 0x81:
		l = int(r.u8())
	case 0x82:
		l = int(r.u16())
	}
	ui := r.bytes(l)
	if r.err != nil {
		return spdu, u, r.err
	}
	u, err = parseUserInfo(ui)
	return spdu, u, err
}

// ReleaseRequest, ReleaseResponse and Abort return the fixed session messages.
func ReleaseRequest() []byte  { return append([]byte(nil), releaseRequest...) }
func ReleaseResponse() []byte { return append([]byte(nil), releaseResponse...) }
func Abort() []byte           { return append([]byte(nil), abortMessage...) }
