// Package dicomtest builds small synthetic DICOM instances for tests, fuzz seeds and
// benchmarks, in any storable transfer syntax, much as httptest builds requests. The
// instances are made by dicom/phantom, which the shipped binary uses for the demo's
// modality; this package only keeps the tests' old name for it and is never linked
// into the binary. New tests use dicom/phantom directly.
package dicomtest

import "lifeline/dicom/phantom"

// Spec describes one synthetic instance; see phantom.Spec.
type Spec = phantom.Spec

// Dataset returns the dataset bytes of s encoded in its transfer syntax. Compressed
// syntaxes get encapsulated pixel data whose single fragment is not a real codestream.
func Dataset(s Spec) []byte { return phantom.Dataset(s) }

// File returns a whole Part 10 file for s.
func File(s Spec) []byte { return phantom.File(s) }

// UID returns a distinct UID for test instance n under root.
func UID(root string, n int) string { return phantom.UID(root, n) }
