package intellivue

import "lifeline/telemetry"

// Physiological identifiers (partition NOM_PART_SCADA) the driver maps. The monitor
// identifies every numeric and wave by these 16-bit codes; most equal the low half of
// the IEEE 11073-10101 code, but the mapping is written out so that a monitor's name for
// a quantity lands on the model's name even where the numbers differ.
const (
	NomECGHeartRate uint16 = 0x4182 // NOM_ECG_CARD_BEAT_RATE
	NomSpO2         uint16 = 0x4BB8 // NOM_PULS_OXIM_SAT_O2
	NomPlethRate    uint16 = 0x4822 // NOM_PLETH_PULS_RATE
	NomPerfRel      uint16 = 0x4BB0 // NOM_PULS_OXIM_PERF_REL
	NomNIBP         uint16 = 0x4A04 // NOM_PRESS_BLD_NONINV (compound)
	NomNIBPSys      uint16 = 0x4A05
	NomNIBPDia      uint16 = 0x4A06
	NomNIBPMean     uint16 = 0x4A07
	NomART          uint16 = 0x4A10 // NOM_PRESS_BLD_ART
	NomARTSys       uint16 = 0x4A11
	NomARTDia       uint16 = 0x4A12
	NomARTMean      uint16 = 0x4A13
	NomABP          uint16 = 0x4A14 // NOM_PRESS_BLD_ART_ABP
	NomABPSys       uint16 = 0x4A15
	NomABPDia       uint16 = 0x4A16
	NomABPMean      uint16 = 0x4A17
	NomPAP          uint16 = 0x4A1C // NOM_PRESS_BLD_ART_PULM
	NomPAPSys       uint16 = 0x4A1D
	NomPAPDia       uint16 = 0x4A1E
	NomPAPMean      uint16 = 0x4A1F
	NomCVP          uint16 = 0x4A44 // NOM_PRESS_BLD_VEN_CENT
	NomCVPMean      uint16 = 0x4A47
	NomRespRate     uint16 = 0x500A // NOM_RESP_RATE (impedance)
	NomAwayRespRate uint16 = 0x5012 // NOM_AWAY_RESP_RATE
	NomEtCO2        uint16 = 0x50B0 // NOM_AWAY_CO2_ET
	NomFiCO2        uint16 = 0x50BA // NOM_AWAY_CO2_INSP_MIN
	NomTemp         uint16 = 0x4B48 // NOM_TEMP
	NomECGI         uint16 = 0x0101 // NOM_ECG_ELEC_POTL_I
	NomECGII        uint16 = 0x0102
	NomECGV1        uint16 = 0x0103
	NomECGV2        uint16 = 0x0104
	NomECGV3        uint16 = 0x0105
	NomECGV4        uint16 = 0x0106
	NomECGV5        uint16 = 0x0107
	NomECGV6        uint16 = 0x0108
	NomECGIII       uint16 = 0x013D
	NomECGAVR       uint16 = 0x013E
	NomECGAVL       uint16 = 0x013F
	NomECGAVF       uint16 = 0x0140
	NomPleth        uint16 = 0x4BB4 // NOM_PLETH
	NomResp         uint16 = 0x5000 // NOM_RESP: impedance respiration wave
	NomAwayCO2      uint16 = 0x50AC // NOM_AWAY_CO2: capnogram
)

// Unit codes (partition NOM_PART_DIM); the model maps them via telemetry.UnitFromMDC.
const (
	DimDimless    uint16 = 0x0200
	DimPercent    uint16 = 0x0220
	DimBeatPerMin uint16 = 0x0AA0
	DimRespPerMin uint16 = 0x0AE0
	DimMMHg       uint16 = 0x0F20
	DimKPa        uint16 = 0x0F03
	DimDegC       uint16 = 0x17A0
	DimMilliVolt  uint16 = 0x10B2
	DimMicroVolt  uint16 = 0x10B3
	DimOhm        uint16 = 0x10C0
)

var physioCodes = map[uint16]telemetry.Code{
	NomECGHeartRate: telemetry.MDC_ECG_HEART_RATE,
	NomSpO2:         telemetry.MDC_PULS_OXIM_SAT_O2,
	NomPlethRate:    telemetry.MDC_PULS_OXIM_PULS_RATE,
	NomPerfRel:      telemetry.MDC_PULS_OXIM_PERF_REL,
	NomNIBPSys:      telemetry.MDC_PRESS_BLD_NONINV_SYS,
	NomNIBPDia:      telemetry.MDC_PRESS_BLD_NONINV_DIA,
	NomNIBPMean:     telemetry.MDC_PRESS_BLD_NONINV_MEAN,
	NomART:          telemetry.MDC_PRESS_BLD_ART,
	NomARTSys:       telemetry.MDC_PRESS_BLD_ART_SYS,
	NomARTDia:       telemetry.MDC_PRESS_BLD_ART_DIA,
	NomARTMean:      telemetry.MDC_PRESS_BLD_ART_MEAN,
	NomABP:          telemetry.MDC_PRESS_BLD_ART_ABP,
	NomABPSys:       telemetry.MDC_PRESS_BLD_ART_ABP_SYS,
	NomABPDia:       telemetry.MDC_PRESS_BLD_ART_ABP_DIA,
	NomABPMean:      telemetry.MDC_PRESS_BLD_ART_ABP_MEAN,
	NomPAP:          telemetry.MDC_PRESS_BLD_ART_PULM,
	NomPAPSys:       telemetry.MDC_PRESS_BLD_ART_PULM_SYS,
	NomPAPDia:       telemetry.MDC_PRESS_BLD_ART_PULM_DIA,
	NomPAPMean:      telemetry.MDC_PRESS_BLD_ART_PULM_MEAN,
	NomCVP:          telemetry.MDC_PRESS_BLD_VEN_CENT,
	NomCVPMean:      telemetry.MDC_PRESS_BLD_VEN_CENT_MEAN,
	NomRespRate:     telemetry.MDC_RESP_RATE,
	NomAwayRespRate: telemetry.MDC_AWAY_RESP_RATE,
	NomEtCO2:        telemetry.MDC_AWAY_CO2_ET,
	NomFiCO2:        telemetry.MDC_AWAY_CO2_INSP_MIN,
	NomTemp:         telemetry.MDC_TEMP,
	NomECGI:         telemetry.MDC_ECG_ELEC_POTL_I,
	NomECGII:        telemetry.MDC_ECG_ELEC_POTL_II,
	NomECGIII:       telemetry.MDC_ECG_ELEC_POTL_III,
	NomECGAVR:       telemetry.MDC_ECG_ELEC_POTL_AVR,
	NomECGAVL:       telemetry.MDC_ECG_ELEC_POTL_AVL,
	NomECGAVF:       telemetry.MDC_ECG_ELEC_POTL_AVF,
	NomECGV1:        telemetry.MDC_ECG_ELEC_POTL_V1,
	NomECGV2:        telemetry.MDC_ECG_ELEC_POTL_V2,
	NomECGV3:        telemetry.MDC_ECG_ELEC_POTL_V3,
	NomECGV4:        telemetry.MDC_ECG_ELEC_POTL_V4,
	NomECGV5:        telemetry.MDC_ECG_ELEC_POTL_V5,
	NomECGV6:        telemetry.MDC_ECG_ELEC_POTL_V6,
	NomPleth:        telemetry.MDC_PULS_OXIM_PLETH,
	NomResp:         telemetry.MDC_IMPED_TTHOR,
	NomAwayCO2:      telemetry.MDC_AWAY_CO2,
}

// ecg12 lists the Philips lead ids in the order of telemetry.ECG12.
var ecg12 = [12]uint16{NomECGI, NomECGII, NomECGIII, NomECGAVR, NomECGAVL, NomECGAVF,
	NomECGV1, NomECGV2, NomECGV3, NomECGV4, NomECGV5, NomECGV6}

// Lookup maps a physio id to the model's code.
func Lookup(id uint16) (telemetry.Code, bool) {
	c, ok := physioCodes[id]
	return c, ok
}

// Unit maps a NOM_PART_DIM unit code to UCUM.
func Unit(code uint16) (string, bool) {
	return telemetry.UnitFromMDC(telemetry.Code(uint32(PartDim)<<16|uint32(code)), "")
}
