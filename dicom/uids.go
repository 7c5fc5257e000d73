// Package dicom holds the DICOM facts that the box's networking, spool and tools share:
// the storage SOP classes of PS3.4 Annex B, the transfer syntaxes the box can keep
// unchanged, the Part 10 file format (PS3.10) and a walker that checks a dataset's
// structure (PS3.5) and pulls out the attributes the spool indexes.
package dicom

// ImplementationClassUID identifies Lifeline in the File Meta Information and in
// association negotiation. It is a UUID-derived UID (PS3.5 B.2), so it needs no
// registered root.
const ImplementationClassUID = "2.25.95536902623882715073051779369891136900"

// ImplementationVersionName goes with ImplementationClassUID (at most 16 characters).
const ImplementationVersionName = "LIFELINE_1"

// ApplicationContextName is the only DICOM application context (PS3.7 A.2.1).
const ApplicationContextName = "1.2.840.10008.3.1.1.1"

// VerificationSOPClass is C-ECHO's SOP class.
const VerificationSOPClass = "1.2.840.10008.1.1"

// MediaStorageDirectorySOPClass is the SOP class of a DICOMDIR file.
const MediaStorageDirectorySOPClass = "1.2.840.10008.1.3.10"

// Transfer syntaxes (PS3.6 Table A-1).
const (
	ImplicitVRLittleEndian         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian         = "1.2.840.10008.1.2.1"
	EncapsulatedUncompressedLE     = "1.2.840.10008.1.2.1.98"
	DeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian            = "1.2.840.10008.1.2.2"
	JPEGBaseline                   = "1.2.840.10008.1.2.4.50"
	JPEGExtended                   = "1.2.840.10008.1.2.4.51"
	JPEGLossless                   = "1.2.840.10008.1.2.4.57"
	JPEGLosslessSV1                = "1.2.840.10008.1.2.4.70"
	JPEGLSLossless                 = "1.2.840.10008.1.2.4.80"
	JPEGLSNearLossless             = "1.2.840.10008.1.2.4.81"
	JPEG2000Lossless               = "1.2.840.10008.1.2.4.90"
	JPEG2000                       = "1.2.840.10008.1.2.4.91"
	JPEG2000MCLossless             = "1.2.840.10008.1.2.4.92"
	JPEG2000MC                     = "1.2.840.10008.1.2.4.93"
	MPEG2MainML                    = "1.2.840.10008.1.2.4.100"
	MPEG2MainMLFragmentable        = "1.2.840.10008.1.2.4.100.1"
	MPEG2MainHL                    = "1.2.840.10008.1.2.4.101"
	MPEG2MainHLFragmentable        = "1.2.840.10008.1.2.4.101.1"
	MPEG4HP41                      = "1.2.840.10008.1.2.4.102"
	MPEG4HP41Fragmentable          = "1.2.840.10008.1.2.4.102.1"
	MPEG4HP41BD                    = "1.2.840.10008.1.2.4.103"
	MPEG4HP41BDFragmentable        = "1.2.840.10008.1.2.4.103.1"
	MPEG4HP422D                    = "1.2.840.10008.1.2.4.104"
	MPEG4HP422DFragmentable        = "1.2.840.10008.1.2.4.104.1"
	MPEG4HP423D                    = "1.2.840.10008.1.2.4.105"
	MPEG4HP423DFragmentable        = "1.2.840.10008.1.2.4.105.1"
	MPEG4Stereo                    = "1.2.840.10008.1.2.4.106"
	MPEG4StereoFragmentable        = "1.2.840.10008.1.2.4.106.1"
	HEVCMain                       = "1.2.840.10008.1.2.4.107"
	HEVCMain10                     = "1.2.840.10008.1.2.4.108"
	HTJ2KLossless                  = "1.2.840.10008.1.2.4.201"
	HTJ2KLosslessRPCL              = "1.2.840.10008.1.2.4.202"
	HTJ2K                          = "1.2.840.10008.1.2.4.203"
	RLELossless                    = "1.2.840.10008.1.2.5"
)

// StorableTransferSyntaxes lists every transfer syntax whose datasets the box can keep
// byte for byte and later send on unchanged: all native and encapsulated syntaxes
// that carry their pixel data inline. JPIP syntaxes are absent because their pixel
// data lives on a server the box cannot reach.
var StorableTransferSyntaxes = []string{
	ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
	ExplicitVRBigEndian, EncapsulatedUncompressedLE,
	JPEGBaseline, JPEGExtended, JPEGLossless, JPEGLosslessSV1,
	JPEGLSLossless, JPEGLSNearLossless,
	JPEG2000Lossless, JPEG2000, JPEG2000MCLossless, JPEG2000MC,
	HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K,
	RLELossless,
	MPEG2MainML, MPEG2MainMLFragmentable, MPEG2MainHL, MPEG2MainHLFragmentable,
	MPEG4HP41, MPEG4HP41Fragmentable, MPEG4HP41BD, MPEG4HP41BDFragmentable,
	MPEG4HP422D, MPEG4HP422DFragmentable, MPEG4HP423D, MPEG4HP423DFragmentable,
	MPEG4Stereo, MPEG4StereoFragmentable,
	HEVCMain, HEVCMain10,
}

// Encoding says how a dataset in a transfer syntax is laid out on the wire.
type Encoding struct {
	Implicit  bool // implicit VR
	BigEndian bool
	Deflated  bool // the whole dataset is a raw deflate stream (PS3.5 A.5)
}

// EncodingOf returns the dataset encoding of a transfer syntax. Every syntax that is
// not one of the three special ones is explicit VR little endian with encapsulated
// pixel data, which the walker handles alike.
func EncodingOf(ts string) Encoding {
	switch ts {
	case ImplicitVRLittleEndian:
		return Encoding{Implicit: true}
	case ExplicitVRBigEndian:
		return Encoding{BigEndian: true}
	case DeflatedExplicitVRLittleEndian:
		return Encoding{Deflated: true}
	}
	return Encoding{}
}

// StorageSOPClasses lists the storage SOP classes of PS3.4 Annex B (and the retired
// ultrasound and nuclear medicine classes that older modalities in clinics still use),
// which the box accepts by default.
var StorageSOPClasses = []string{
	"1.2.840.10008.5.1.4.1.1.1",        // Computed Radiography
	"1.2.840.10008.5.1.4.1.1.1.1",      // Digital X-Ray for Presentation
	"1.2.840.10008.5.1.4.1.1.1.1.1",    // Digital X-Ray for Processing
	"1.2.840.10008.5.1.4.1.1.1.2",      // Digital Mammography for Presentation
	"1.2.840.10008.5.1.4.1.1.1.2.1",    // Digital Mammography for Processing
	"1.2.840.10008.5.1.4.1.1.1.3",      // Digital Intra-Oral X-Ray for Presentation
	"1.2.840.10008.5.1.4.1.1.1.3.1",    // Digital Intra-Oral X-Ray for Processing
	"1.2.840.10008.5.1.4.1.1.2",        // CT
	"1.2.840.10008.5.1.4.1.1.2.1",      // Enhanced CT
	"1.2.840.10008.5.1.4.1.1.2.2",      // Legacy Converted Enhanced CT
	"1.2.840.10008.5.1.4.1.1.3",        // Ultrasound Multi-frame (retired)
	"1.2.840.10008.5.1.4.1.1.3.1",      // Ultrasound Multi-frame
	"1.2.840.10008.5.1.4.1.1.4",        // MR
	"1.2.840.10008.5.1.4.1.1.4.1",      // Enhanced MR
	"1.2.840.10008.5.1.4.1.1.4.2",      // MR Spectroscopy
	"1.2.840.10008.5.1.4.1.1.4.3",      // Enhanced MR Color
	"1.2.840.10008.5.1.4.1.1.4.4",      // Legacy Converted Enhanced MR
	"1.2.840.10008.5.1.4.1.1.5",        // Nuclear Medicine (retired)
	"1.2.840.10008.5.1.4.1.1.6",        // Ultrasound (retired)
	"1.2.840.10008.5.1.4.1.1.6.1",      // Ultrasound
	"1.2.840.10008.5.1.4.1.1.6.2",      // Enhanced US Volume
	"1.2.840.10008.5.1.4.1.1.7",        // Secondary Capture
	"1.2.840.10008.5.1.4.1.1.7.1",      // Multi-frame Single Bit Secondary Capture
	"1.2.840.10008.5.1.4.1.1.7.2",      // Multi-frame Grayscale Byte Secondary Capture
	"1.2.840.10008.5.1.4.1.1.7.3",      // Multi-frame Grayscale Word Secondary Capture
	"1.2.840.10008.5.1.4.1.1.7.4",      // Multi-frame True Color Secondary Capture
	"1.2.840.10008.5.1.4.1.1.9.1.1",    // 12-lead ECG Waveform
	"1.2.840.10008.5.1.4.1.1.9.1.2",    // General ECG Waveform
	"1.2.840.10008.5.1.4.1.1.9.1.3",    // Ambulatory ECG Waveform
	"1.2.840.10008.5.1.4.1.1.9.2.1",    // Hemodynamic Waveform
	"1.2.840.10008.5.1.4.1.1.9.3.1",    // Cardiac Electrophysiology Waveform
	"1.2.840.10008.5.1.4.1.1.9.4.1",    // Basic Voice Audio Waveform
	"1.2.840.10008.5.1.4.1.1.9.4.2",    // General Audio Waveform
	"1.2.840.10008.5.1.4.1.1.9.5.1",    // Arterial Pulse Waveform
	"1.2.840.10008.5.1.4.1.1.9.6.1",    // Respiratory Waveform
	"1.2.840.10008.5.1.4.1.1.9.6.2",    // Multi-channel Respiratory Waveform
	"1.2.840.10008.5.1.4.1.1.9.7.1",    // Routine Scalp Electroencephalogram
	"1.2.840.10008.5.1.4.1.1.9.7.2",    // Electromyogram
	"1.2.840.10008.5.1.4.1.1.9.7.3",    // Electrooculogram
	"1.2.840.10008.5.1.4.1.1.9.7.4",    // Sleep Electroencephalogram
	"1.2.840.10008.5.1.4.1.1.9.8.1",    // Body Position Waveform
	"1.2.840.10008.5.1.4.1.1.11.1",     // Grayscale Softcopy Presentation State
	"1.2.840.10008.5.1.4.1.1.11.2",     // Color Softcopy Presentation State
	"1.2.840.10008.5.1.4.1.1.11.3",     // Pseudo-Color Softcopy Presentation State
	"1.2.840.10008.5.1.4.1.1.11.4",     // Blending Softcopy Presentation State
	"1.2.840.10008.5.1.4.1.1.12.1",     // X-Ray Angiographic
	"1.2.840.10008.5.1.4.1.1.12.1.1",   // Enhanced XA
	"1.2.840.10008.5.1.4.1.1.12.2",     // X-Ray Radiofluoroscopic
	"1.2.840.10008.5.1.4.1.1.12.2.1",   // Enhanced XRF
	"1.2.840.10008.5.1.4.1.1.13.1.1",   // X-Ray 3D Angiographic
	"1.2.840.10008.5.1.4.1.1.13.1.2",   // X-Ray 3D Craniofacial
	"1.2.840.10008.5.1.4.1.1.13.1.3",   // Breast Tomosynthesis
	"1.2.840.10008.5.1.4.1.1.13.1.4",   // Breast Projection X-Ray for Presentation
	"1.2.840.10008.5.1.4.1.1.13.1.5",   // Breast Projection X-Ray for Processing
	"1.2.840.10008.5.1.4.1.1.14.1",     // Intravascular OCT for Presentation
	"1.2.840.10008.5.1.4.1.1.14.2",     // Intravascular OCT for Processing
	"1.2.840.10008.5.1.4.1.1.20",       // Nuclear Medicine
	"1.2.840.10008.5.1.4.1.1.30",       // Parametric Map
	"1.2.840.10008.5.1.4.1.1.66",       // Raw Data
	"1.2.840.10008.5.1.4.1.1.66.1",     // Spatial Registration
	"1.2.840.10008.5.1.4.1.1.66.2",     // Spatial Fiducials
	"1.2.840.10008.5.1.4.1.1.66.3",     // Deformable Spatial Registration
	"1.2.840.10008.5.1.4.1.1.66.4",     // Segmentation
	"1.2.840.10008.5.1.4.1.1.66.5",     // Surface Segmentation
	"1.2.840.10008.5.1.4.1.1.66.6",     // Tractography Results
	"1.2.840.10008.5.1.4.1.1.67",       // Real World Value Mapping
	"1.2.840.10008.5.1.4.1.1.68.1",     // Surface Scan Mesh
	"1.2.840.10008.5.1.4.1.1.68.2",     // Surface Scan Point Cloud
	"1.2.840.10008.5.1.4.1.1.77.1.1",   // VL Endoscopic
	"1.2.840.10008.5.1.4.1.1.77.1.1.1", // Video Endoscopic
	"1.2.840.10008.5.1.4.1.1.77.1.2",   // VL Microscopic
	"1.2.840.10008.5.1.4.1.1.77.1.2.1", // Video Microscopic
	"1.2.840.10008.5.1.4.1.1.77.1.3",   // VL Slide-Coordinates Microscopic
	"1.2.840.10008.5.1.4.1.1.77.1.4",   // VL Photographic
	"1.2.840.10008.5.1.4.1.1.77.1.4.1", // Video Photographic
	"1.2.840.10008.5.1.4.1.1.77.1.5.1", // Ophthalmic Photography 8 Bit
	"1.2.840.10008.5.1.4.1.1.77.1.5.2", // Ophthalmic Photography 16 Bit
	"1.2.840.10008.5.1.4.1.1.77.1.5.3", // Stereometric Relationship
	"1.2.840.10008.5.1.4.1.1.77.1.5.4", // Ophthalmic Tomography
	"1.2.840.10008.5.1.4.1.1.77.1.5.5", // Wide Field Ophthalmic Photography Stereographic
	"1.2.840.10008.5.1.4.1.1.77.1.5.6", // Wide Field Ophthalmic Photography 3D Coordinates
	"1.2.840.10008.5.1.4.1.1.77.1.5.7", // Ophthalmic OCT En Face
	"1.2.840.10008.5.1.4.1.1.77.1.5.8", // Ophthalmic OCT B-scan Volume Analysis
	"1.2.840.10008.5.1.4.1.1.77.1.6",   // VL Whole Slide Microscopy
	"1.2.840.10008.5.1.4.1.1.77.1.7",   // Dermoscopic Photography
	"1.2.840.10008.5.1.4.1.1.78.1",     // Lensometry Measurements
	"1.2.840.10008.5.1.4.1.1.78.2",     // Autorefraction Measurements
	"1.2.840.10008.5.1.4.1.1.78.3",     // Keratometry Measurements
	"1.2.840.10008.5.1.4.1.1.78.4",     // Subjective Refraction Measurements
	"1.2.840.10008.5.1.4.1.1.78.5",     // Visual Acuity Measurements
	"1.2.840.10008.5.1.4.1.1.78.6",     // Spectacle Prescription Report
	"1.2.840.10008.5.1.4.1.1.78.7",     // Ophthalmic Axial Measurements
	"1.2.840.10008.5.1.4.1.1.78.8",     // Intraocular Lens Calculations
	"1.2.840.10008.5.1.4.1.1.79.1",     // Macular Grid Thickness and Volume Report
	"1.2.840.10008.5.1.4.1.1.80.1",     // Ophthalmic Visual Field Static Perimetry
	"1.2.840.10008.5.1.4.1.1.81.1",     // Ophthalmic Thickness Map
	"1.2.840.10008.5.1.4.1.1.82.1",     // Corneal Topography Map
	"1.2.840.10008.5.1.4.1.1.88.11",    // Basic Text SR
	"1.2.840.10008.5.1.4.1.1.88.22",    // Enhanced SR
	"1.2.840.10008.5.1.4.1.1.88.33",    // Comprehensive SR
	"1.2.840.10008.5.1.4.1.1.88.34",    // Comprehensive 3D SR
	"1.2.840.10008.5.1.4.1.1.88.35",    // Extensible SR
	"1.2.840.10008.5.1.4.1.1.88.40",    // Procedure Log
	"1.2.840.10008.5.1.4.1.1.88.50",    // Mammography CAD SR
	"1.2.840.10008.5.1.4.1.1.88.59",    // Key Object Selection Document
	"1.2.840.10008.5.1.4.1.1.88.65",    // Chest CAD SR
	"1.2.840.10008.5.1.4.1.1.88.67",    // X-Ray Radiation Dose SR
	"1.2.840.10008.5.1.4.1.1.88.68",    // Radiopharmaceutical Radiation Dose SR
	"1.2.840.10008.5.1.4.1.1.88.69",    // Colon CAD SR
	"1.2.840.10008.5.1.4.1.1.88.70",    // Implantation Plan SR
	"1.2.840.10008.5.1.4.1.1.88.71",    // Acquisition Context SR
	"1.2.840.10008.5.1.4.1.1.88.72",    // Simplified Adult Echo SR
	"1.2.840.10008.5.1.4.1.1.88.73",    // Patient Radiation Dose SR
	"1.2.840.10008.5.1.4.1.1.88.74",    // Planned Imaging Agent Administration SR
	"1.2.840.10008.5.1.4.1.1.88.75",    // Performed Imaging Agent Administration SR
	"1.2.840.10008.5.1.4.1.1.88.76",    // Enhanced X-Ray Radiation Dose SR
	"1.2.840.10008.5.1.4.1.1.104.1",    // Encapsulated PDF
	"1.2.840.10008.5.1.4.1.1.104.2",    // Encapsulated CDA
	"1.2.840.10008.5.1.4.1.1.104.3",    // Encapsulated STL
	"1.2.840.10008.5.1.4.1.1.104.4",    // Encapsulated OBJ
	"1.2.840.10008.5.1.4.1.1.104.5",    // Encapsulated MTL
	"1.2.840.10008.5.1.4.1.1.128",      // Positron Emission Tomography
	"1.2.840.10008.5.1.4.1.1.128.1",    // Legacy Converted Enhanced PET
	"1.2.840.10008.5.1.4.1.1.130",      // Enhanced PET
	"1.2.840.10008.5.1.4.1.1.131",      // Basic Structured Display
	"1.2.840.10008.5.1.4.1.1.481.1",    // RT Image
	"1.2.840.10008.5.1.4.1.1.481.2",    // RT Dose
	"1.2.840.10008.5.1.4.1.1.481.3",    // RT Structure Set
	"1.2.840.10008.5.1.4.1.1.481.4",    // RT Beams Treatment Record
	"1.2.840.10008.5.1.4.1.1.481.5",    // RT Plan
	"1.2.840.10008.5.1.4.1.1.481.6",    // RT Brachy Treatment Record
	"1.2.840.10008.5.1.4.1.1.481.7",    // RT Treatment Summary Record
	"1.2.840.10008.5.1.4.1.1.481.8",    // RT Ion Plan
	"1.2.840.10008.5.1.4.1.1.481.9",    // RT Ion Beams Treatment Record
	"1.2.840.10008.5.1.4.1.1.6.3",      // Photoacoustic
	"1.2.840.10008.5.1.4.1.1.9.100.1",  // Waveform Presentation State
	"1.2.840.10008.5.1.4.1.1.9.100.2",  // Waveform Acquisition Presentation State
}

// Well-known storage SOP classes that code and tests refer to by name.
const (
	CTImageStorage               = "1.2.840.10008.5.1.4.1.1.2"
	MRImageStorage               = "1.2.840.10008.5.1.4.1.1.4"
	CRImageStorage               = "1.2.840.10008.5.1.4.1.1.1"
	USImageStorage               = "1.2.840.10008.5.1.4.1.1.6.1"
	USMultiFrameImageStorage     = "1.2.840.10008.5.1.4.1.1.3.1"
	SecondaryCaptureImageStorage = "1.2.840.10008.5.1.4.1.1.7"
	TwelveLeadECGStorage         = "1.2.840.10008.5.1.4.1.1.9.1.1"
	EncapsulatedPDFStorage       = "1.2.840.10008.5.1.4.1.1.104.1"
	VideoEndoscopicStorage       = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
)

// ValidUID reports whether s is a syntactically valid UID (PS3.5 9.1): at most 64
// characters, dot-separated numeric components without leading zeros.
func ValidUID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			comp := s[start:i]
			if comp == "" || (len(comp) > 1 && comp[0] == '0') {
				return false
			}
			start = i + 1
			continue
		}
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
