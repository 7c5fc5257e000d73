package dimse

import "lifeline/dicom"

const (
	implementationClassUID = dicom.ImplementationClassUID
	implementationVersion  = dicom.ImplementationVersionName
)

// A-ASSOCIATE-RJ results, sources and reasons (PS3.8 9.3.4).
const (
	rjPermanent = 1
	rjTransient = 2

	rjSourceUser         = 1
	rjSourceACSE         = 2
	rjSourcePresentation = 3

	rjNoReason               = 1
	rjAppContextNotSupported = 2
	rjCallingAENotRecognized = 3
	rjCalledAENotRecognized  = 7
	rjProtocolVersion        = 2 // with source ACSE
	rjLocalLimitExceeded     = 2 // with source presentation
	rjTemporaryCongestion    = 1 // with source presentation
)

// A-ABORT sources and reasons (PS3.8 9.3.8).
const (
	abortSourceUser     = 0
	abortSourceProvider = 2

	abortNotSpecified     = 0
	abortUnrecognizedPDU  = 1
	abortUnexpectedPDU    = 2
	abortInvalidParameter = 6
)

// DIMSE statuses (PS3.7 Annex C, PS3.4 B.2.3).
const (
	StatusSuccess              uint16 = 0x0000
	StatusSOPClassNotSupported uint16 = 0x0122
	StatusUnrecognizedOp       uint16 = 0x0211
	StatusOutOfResources       uint16 = 0xA700
	StatusDataSetMismatch      uint16 = 0xA900
	StatusCannotUnderstand     uint16 = 0xC000
)
