package transfer

// compressible reports whether instances in transfer syntax ts carry raw pixels,
// which zstd shrinks; encapsulated (JPEG, JPEG-LS, JPEG 2000, RLE) and deflated
// syntaxes are already compressed, and zstd would only burn CPU on them.
func compressible(ts string) bool {
	switch ts {
	case "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2":
		return true
	}
	return false
}
