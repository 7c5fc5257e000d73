package telemetry

// Quantities added so that what GE, Datex and Philips monitors send reaches the bus
// named (issue 15). Sources, per code:
//
//   - "Philips": the NOM_PART_SCADA term of the Philips IntelliVue Data Export
//     Programming Guide (as reproduced in the enumerations of github.com/xeonfusion/
//     VSCaptureMP, Class3.cs). In partition 2 the IntelliVue term equals the
//     11073-10101 term, which the codes already in mdc.go confirm: NOM_PULS_OXIM_SAT_O2
//     19384 = 150456 − 131072, NOM_TEMP_SKIN 19316 = 150388 − 131072, and so on.
//   - "GE": seen with this number and reference id in OBX-3 of GE B40/B1x5 PCD-01
//     messages.
//   - "cross-checked": two independent sources agree (named beside the code).
//   - "Philips-private": a term in Philips' private range (0xF000 and up) for which no
//     11073-10101 code was found; named by Philips' NOM reference id so that nobody
//     takes it for a standard code.
const (
	MDC_CONC_AWAY_CO2_EXP  Code = 151712 // GE (B40/B1x5 PCD-01 messages): EtCO2
	MDC_CONC_AWAY_CO2_INSP Code = 151716 // GE (B40/B1x5 PCD-01 messages): FiCO2

	MDC_CONC_AWAY_O2         Code = 151908 // Philips NOM_CONC_AWAY_O2 0x5164 (wave)
	MDC_CONC_AWAY_O2_INSP    Code = 152196 // cross-checked: Philips 0x5284, IHE PCD Rosetta tables quoted in public ventilator integrations
	MDC_CONC_AWAY_O2_ET      Code = 152440 // Philips NOM_CONC_AWAY_O2_ET 0x5378
	MDC_CONC_AWAY_N2O        Code = 152048 // Philips NOM_CONC_AWAY_N2O 0x51F0 (wave)
	MDC_CONC_AWAY_N2O_ET     Code = 152108 // Philips 0x522C
	MDC_CONC_AWAY_N2O_INSP   Code = 152192 // Philips 0x5280
	MDC_CONC_AWAY_AGENT      Code = 152456 // Philips NOM_CONC_AWAY_AGENT 0x5388 (wave)
	MDC_CONC_AWAY_AGENT_ET   Code = 152460 // Philips 0x538C
	MDC_CONC_AWAY_AGENT_INSP Code = 152464 // Philips 0x5390
	MDC_CONC_AWAY_DESFL_ET   Code = 152084 // Philips 0x5214
	MDC_CONC_AWAY_ENFL_ET    Code = 152088 // Philips 0x5218
	MDC_CONC_AWAY_HALOTH_ET  Code = 152092 // Philips 0x521C
	MDC_CONC_AWAY_SEVOFL_ET  Code = 152096 // Philips 0x5220
	MDC_CONC_AWAY_ISOFL_ET   Code = 152100 // Philips 0x5224
	MDC_CONC_AWAY_DESFL_INSP Code = 152168 // Philips 0x5268
	MDC_CONC_AWAY_ENFL_INSP  Code = 152172 // Philips 0x526C
	MDC_CONC_AWAY_HALOTH_IN  Code = 152176 // Philips NOM_CONC_AWAY_HALOTH_INSP 0x5270
	MDC_CONC_AWAY_SEVOFL_IN  Code = 152180 // Philips NOM_CONC_AWAY_SEVOFL_INSP 0x5274
	MDC_CONC_AWAY_ISOFL_INSP Code = 152184 // Philips 0x5278
	NOM_CONC_AWAY_SUM_MAC_ET Code = 192606 // Philips-private 0xF05E: MAC sum, end-tidal

	MDC_SAT_O2      Code = 150316 // Philips NOM_SAT_O2 0x4B2C: an O2 saturation whose site the monitor does not name
	MDC_SAT_O2_ART  Code = 150324 // Philips NOM_SAT_O2_ART 0x4B34: SaO2
	MDC_SAT_O2_VEN  Code = 150332 // Philips NOM_SAT_O2_VEN 0x4B3C: SvO2
	MDC_OUTPUT_CARD Code = 150276 // Philips NOM_OUTPUT_CARD 0x4B04: cardiac output
	MDC_PULS_RATE   Code = 149514 // Philips NOM_PULS_RATE 0x480A: a pulse rate of no named source (NIBP)

	MDC_TEMP_AWAY   Code = 150356 // Philips NOM_TEMP_AWAY 0x4B54
	MDC_TEMP_CORE   Code = 150368 // Philips NOM_TEMP_CORE 0x4B60
	MDC_TEMP_NASOPH Code = 150380 // Philips NOM_TEMP_NASOPH 0x4B6C
	MDC_TEMP_TYMP   Code = 150392 // Philips NOM_TEMP_TYMP 0x4B78

	MDC_PRESS_BLD                Code = 150016 // Philips NOM_PRESS_BLD 0x4A00: a blood pressure whose site the monitor does not name
	MDC_PRESS_BLD_SYS            Code = 150017 // Philips 0x4A01
	MDC_PRESS_BLD_DIA            Code = 150018 // Philips 0x4A02
	MDC_PRESS_BLD_MEAN           Code = 150019 // Philips 0x4A03
	MDC_PRESS_BLD_ART_PULM_WEDGE Code = 150052 // Philips 0x4A24: PCWP
	MDC_PRESS_BLD_ART_UMB        Code = 150056 // Philips 0x4A28: UAC
	MDC_PRESS_BLD_ART_UMB_SYS    Code = 150057
	MDC_PRESS_BLD_ART_UMB_DIA    Code = 150058
	MDC_PRESS_BLD_ART_UMB_MEAN   Code = 150059
	MDC_PRESS_BLD_ATR_LEFT       Code = 150064 // Philips 0x4A30: LAP
	MDC_PRESS_BLD_ATR_LEFT_SYS   Code = 150065
	MDC_PRESS_BLD_ATR_LEFT_DIA   Code = 150066
	MDC_PRESS_BLD_ATR_LEFT_MEAN  Code = 150067
	MDC_PRESS_BLD_ATR_RIGHT      Code = 150068 // Philips 0x4A34: RAP
	MDC_PRESS_BLD_ATR_RIGHT_SYS  Code = 150069
	MDC_PRESS_BLD_ATR_RIGHT_DIA  Code = 150070
	MDC_PRESS_BLD_ATR_RIGHT_MEAN Code = 150071
	MDC_PRESS_BLD_VEN_CENT_SYS   Code = 150085 // Philips 0x4A45
	MDC_PRESS_BLD_VEN_CENT_DIA   Code = 150086 // Philips 0x4A46
	MDC_PRESS_BLD_VEN_UMB        Code = 150088 // Philips 0x4A48: UVC
	MDC_PRESS_BLD_VEN_UMB_SYS    Code = 150089
	MDC_PRESS_BLD_VEN_UMB_DIA    Code = 150090
	MDC_PRESS_BLD_VEN_UMB_MEAN   Code = 150091
	MDC_PRESS_INTRA_CRAN         Code = 153608 // Philips NOM_PRESS_INTRA_CRAN 0x5808: ICP
	MDC_PRESS_INTRA_CRAN_SYS     Code = 153609
	MDC_PRESS_INTRA_CRAN_DIA     Code = 153610
	MDC_PRESS_INTRA_CRAN_MEAN    Code = 153611

	MDC_COMPL_LUNG                  Code = 151688 // cross-checked: Philips NOM_COMPL_LUNG 0x5088, a public ventilator integration's table
	MDC_PRESS_RESP_PLAT             Code = 151784 // Philips NOM_PRESS_RESP_PLAT 0x50E8
	MDC_PRESS_AWAY_INSP_MAX         Code = 151817 // Philips NOM_PRESS_AWAY_INSP_MAX 0x5109: peak airway pressure
	MDC_VOL_AWAY_TIDAL              Code = 151868 // Philips NOM_VOL_AWAY_TIDAL 0x513C
	MDC_VOL_MINUTE_AWAY_EXP         Code = 151884 // Philips NOM_VOL_MINUTE_AWAY_EXP 0x514C
	MDC_VENT_PRESS_AWAY_END_EXP_POS Code = 151976 // Philips NOM_VENT_PRESS_AWAY_END_EXP_POS 0x51A8: PEEP

	MDC_ECG_AMPL_ST     Code = 131840 // Philips NOM_ECG_AMPL_ST 0x0300: ST of an unnamed lead
	MDC_ECG_AMPL_ST_I   Code = 131841 // cross-checked: Philips 0x0301, GE PCD-01 code list
	MDC_ECG_AMPL_ST_II  Code = 131842 // Philips 0x0302
	MDC_ECG_AMPL_ST_V1  Code = 131843 // Philips 0x0303
	MDC_ECG_AMPL_ST_V2  Code = 131844
	MDC_ECG_AMPL_ST_V3  Code = 131845
	MDC_ECG_AMPL_ST_V4  Code = 131846
	MDC_ECG_AMPL_ST_V5  Code = 131847
	MDC_ECG_AMPL_ST_V6  Code = 131848 // Philips 0x0308
	MDC_ECG_AMPL_ST_III Code = 131901 // Philips 0x033D
	MDC_ECG_AMPL_ST_AVR Code = 131902
	MDC_ECG_AMPL_ST_AVL Code = 131903
	MDC_ECG_AMPL_ST_AVF Code = 131904 // Philips 0x0340
)

// UCUM units of the quantities added here.
const (
	UnitLitrePerMinute  = "L/min"      // cardiac output, minute volume
	UnitCmH2O           = "cm[H2O]"    // airway pressures
	UnitMilliLitre      = "mL"         // tidal volume
	UnitMilliLitrePerCm = "mL/cm[H2O]" // compliance
)

var moreQuantities = []Quantity{
	{MDC_CONC_AWAY_CO2_EXP, "MDC_CONC_AWAY_CO2_EXP", UnitMMHg, false, "EtCO2"},
	{MDC_CONC_AWAY_CO2_INSP, "MDC_CONC_AWAY_CO2_INSP", UnitMMHg, false, "FiCO2"},
	{MDC_CONC_AWAY_O2, "MDC_CONC_AWAY_O2", UnitPercent, true, "O2"},
	{MDC_CONC_AWAY_O2_INSP, "MDC_CONC_AWAY_O2_INSP", UnitPercent, false, "FiO2"},
	{MDC_CONC_AWAY_O2_ET, "MDC_CONC_AWAY_O2_ET", UnitPercent, false, "EtO2"},
	{MDC_CONC_AWAY_N2O, "MDC_CONC_AWAY_N2O", UnitPercent, true, "N2O"},
	{MDC_CONC_AWAY_N2O_ET, "MDC_CONC_AWAY_N2O_ET", UnitPercent, false, "EtN2O"},
	{MDC_CONC_AWAY_N2O_INSP, "MDC_CONC_AWAY_N2O_INSP", UnitPercent, false, "FiN2O"},
	{MDC_CONC_AWAY_AGENT, "MDC_CONC_AWAY_AGENT", UnitPercent, true, "AA"},
	{MDC_CONC_AWAY_AGENT_ET, "MDC_CONC_AWAY_AGENT_ET", UnitPercent, false, "EtAA"},
	{MDC_CONC_AWAY_AGENT_INSP, "MDC_CONC_AWAY_AGENT_INSP", UnitPercent, false, "FiAA"},
	{MDC_CONC_AWAY_DESFL_ET, "MDC_CONC_AWAY_DESFL_ET", UnitPercent, false, "EtDES"},
	{MDC_CONC_AWAY_ENFL_ET, "MDC_CONC_AWAY_ENFL_ET", UnitPercent, false, "EtENF"},
	{MDC_CONC_AWAY_HALOTH_ET, "MDC_CONC_AWAY_HALOTH_ET", UnitPercent, false, "EtHAL"},
	{MDC_CONC_AWAY_SEVOFL_ET, "MDC_CONC_AWAY_SEVOFL_ET", UnitPercent, false, "EtSEV"},
	{MDC_CONC_AWAY_ISOFL_ET, "MDC_CONC_AWAY_ISOFL_ET", UnitPercent, false, "EtISO"},
	{MDC_CONC_AWAY_DESFL_INSP, "MDC_CONC_AWAY_DESFL_INSP", UnitPercent, false, "FiDES"},
	{MDC_CONC_AWAY_ENFL_INSP, "MDC_CONC_AWAY_ENFL_INSP", UnitPercent, false, "FiENF"},
	{MDC_CONC_AWAY_HALOTH_IN, "MDC_CONC_AWAY_HALOTH_INSP", UnitPercent, false, "FiHAL"},
	{MDC_CONC_AWAY_SEVOFL_IN, "MDC_CONC_AWAY_SEVOFL_INSP", UnitPercent, false, "FiSEV"},
	{MDC_CONC_AWAY_ISOFL_INSP, "MDC_CONC_AWAY_ISOFL_INSP", UnitPercent, false, "FiISO"},
	{NOM_CONC_AWAY_SUM_MAC_ET, "NOM_CONC_AWAY_SUM_MAC_ET", UnitNone, false, "MAC"},
	{MDC_SAT_O2, "MDC_SAT_O2", UnitPercent, false, "SO2"},
	{MDC_SAT_O2_ART, "MDC_SAT_O2_ART", UnitPercent, false, "SaO2"},
	{MDC_SAT_O2_VEN, "MDC_SAT_O2_VEN", UnitPercent, false, "SvO2"},
	{MDC_OUTPUT_CARD, "MDC_OUTPUT_CARD", UnitLitrePerMinute, false, "CO"},
	{MDC_PULS_RATE, "MDC_PULS_RATE", UnitPerMinute, false, "PR"},
	{MDC_TEMP_AWAY, "MDC_TEMP_AWAY", UnitCelsius, false, "Tairw"},
	{MDC_TEMP_CORE, "MDC_TEMP_CORE", UnitCelsius, false, "Tcore"},
	{MDC_TEMP_NASOPH, "MDC_TEMP_NASOPH", UnitCelsius, false, "Tnaso"},
	{MDC_TEMP_TYMP, "MDC_TEMP_TYMP", UnitCelsius, false, "Ttymp"},
	{MDC_PRESS_BLD, "MDC_PRESS_BLD", UnitMMHg, true, "P"},
	{MDC_PRESS_BLD_SYS, "MDC_PRESS_BLD_SYS", UnitMMHg, false, "Ps"},
	{MDC_PRESS_BLD_DIA, "MDC_PRESS_BLD_DIA", UnitMMHg, false, "Pd"},
	{MDC_PRESS_BLD_MEAN, "MDC_PRESS_BLD_MEAN", UnitMMHg, false, "Pm"},
	{MDC_PRESS_BLD_ART_PULM_WEDGE, "MDC_PRESS_BLD_ART_PULM_WEDGE", UnitMMHg, false, "PCWP"},
	{MDC_PRESS_BLD_ART_UMB, "MDC_PRESS_BLD_ART_UMB", UnitMMHg, true, "UAP"},
	{MDC_PRESS_BLD_ART_UMB_SYS, "MDC_PRESS_BLD_ART_UMB_SYS", UnitMMHg, false, "UAPs"},
	{MDC_PRESS_BLD_ART_UMB_DIA, "MDC_PRESS_BLD_ART_UMB_DIA", UnitMMHg, false, "UAPd"},
	{MDC_PRESS_BLD_ART_UMB_MEAN, "MDC_PRESS_BLD_ART_UMB_MEAN", UnitMMHg, false, "UAPm"},
	{MDC_PRESS_BLD_ATR_LEFT, "MDC_PRESS_BLD_ATR_LEFT", UnitMMHg, true, "LAP"},
	{MDC_PRESS_BLD_ATR_LEFT_SYS, "MDC_PRESS_BLD_ATR_LEFT_SYS", UnitMMHg, false, "LAPs"},
	{MDC_PRESS_BLD_ATR_LEFT_DIA, "MDC_PRESS_BLD_ATR_LEFT_DIA", UnitMMHg, false, "LAPd"},
	{MDC_PRESS_BLD_ATR_LEFT_MEAN, "MDC_PRESS_BLD_ATR_LEFT_MEAN", UnitMMHg, false, "LAPm"},
	{MDC_PRESS_BLD_ATR_RIGHT, "MDC_PRESS_BLD_ATR_RIGHT", UnitMMHg, true, "RAP"},
	{MDC_PRESS_BLD_ATR_RIGHT_SYS, "MDC_PRESS_BLD_ATR_RIGHT_SYS", UnitMMHg, false, "RAPs"},
	{MDC_PRESS_BLD_ATR_RIGHT_DIA, "MDC_PRESS_BLD_ATR_RIGHT_DIA", UnitMMHg, false, "RAPd"},
	{MDC_PRESS_BLD_ATR_RIGHT_MEAN, "MDC_PRESS_BLD_ATR_RIGHT_MEAN", UnitMMHg, false, "RAPm"},
	{MDC_PRESS_BLD_VEN_CENT_SYS, "MDC_PRESS_BLD_VEN_CENT_SYS", UnitMMHg, false, "CVPs"},
	{MDC_PRESS_BLD_VEN_CENT_DIA, "MDC_PRESS_BLD_VEN_CENT_DIA", UnitMMHg, false, "CVPd"},
	{MDC_PRESS_BLD_VEN_UMB, "MDC_PRESS_BLD_VEN_UMB", UnitMMHg, true, "UVP"},
	{MDC_PRESS_BLD_VEN_UMB_SYS, "MDC_PRESS_BLD_VEN_UMB_SYS", UnitMMHg, false, "UVPs"},
	{MDC_PRESS_BLD_VEN_UMB_DIA, "MDC_PRESS_BLD_VEN_UMB_DIA", UnitMMHg, false, "UVPd"},
	{MDC_PRESS_BLD_VEN_UMB_MEAN, "MDC_PRESS_BLD_VEN_UMB_MEAN", UnitMMHg, false, "UVPm"},
	{MDC_PRESS_INTRA_CRAN, "MDC_PRESS_INTRA_CRAN", UnitMMHg, true, "ICP"},
	{MDC_PRESS_INTRA_CRAN_SYS, "MDC_PRESS_INTRA_CRAN_SYS", UnitMMHg, false, "ICPs"},
	{MDC_PRESS_INTRA_CRAN_DIA, "MDC_PRESS_INTRA_CRAN_DIA", UnitMMHg, false, "ICPd"},
	{MDC_PRESS_INTRA_CRAN_MEAN, "MDC_PRESS_INTRA_CRAN_MEAN", UnitMMHg, false, "ICPm"},
	{MDC_COMPL_LUNG, "MDC_COMPL_LUNG", UnitMilliLitrePerCm, false, "Compl"},
	{MDC_PRESS_RESP_PLAT, "MDC_PRESS_RESP_PLAT", UnitCmH2O, false, "Pplat"},
	{MDC_PRESS_AWAY_INSP_MAX, "MDC_PRESS_AWAY_INSP_MAX", UnitCmH2O, false, "Ppeak"},
	{MDC_VOL_AWAY_TIDAL, "MDC_VOL_AWAY_TIDAL", UnitMilliLitre, false, "TV"},
	{MDC_VOL_MINUTE_AWAY_EXP, "MDC_VOL_MINUTE_AWAY_EXP", UnitLitrePerMinute, false, "MVexp"},
	{MDC_VENT_PRESS_AWAY_END_EXP_POS, "MDC_VENT_PRESS_AWAY_END_EXP_POS", UnitCmH2O, false, "PEEP"},
	{MDC_ECG_AMPL_ST, "MDC_ECG_AMPL_ST", UnitMilliVolt, false, "ST"},
	{MDC_ECG_AMPL_ST_I, "MDC_ECG_AMPL_ST_I", UnitMilliVolt, false, "ST-I"},
	{MDC_ECG_AMPL_ST_II, "MDC_ECG_AMPL_ST_II", UnitMilliVolt, false, "ST-II"},
	{MDC_ECG_AMPL_ST_III, "MDC_ECG_AMPL_ST_III", UnitMilliVolt, false, "ST-III"},
	{MDC_ECG_AMPL_ST_AVR, "MDC_ECG_AMPL_ST_AVR", UnitMilliVolt, false, "ST-aVR"},
	{MDC_ECG_AMPL_ST_AVL, "MDC_ECG_AMPL_ST_AVL", UnitMilliVolt, false, "ST-aVL"},
	{MDC_ECG_AMPL_ST_AVF, "MDC_ECG_AMPL_ST_AVF", UnitMilliVolt, false, "ST-aVF"},
	{MDC_ECG_AMPL_ST_V1, "MDC_ECG_AMPL_ST_V1", UnitMilliVolt, false, "ST-V1"},
	{MDC_ECG_AMPL_ST_V2, "MDC_ECG_AMPL_ST_V2", UnitMilliVolt, false, "ST-V2"},
	{MDC_ECG_AMPL_ST_V3, "MDC_ECG_AMPL_ST_V3", UnitMilliVolt, false, "ST-V3"},
	{MDC_ECG_AMPL_ST_V4, "MDC_ECG_AMPL_ST_V4", UnitMilliVolt, false, "ST-V4"},
	{MDC_ECG_AMPL_ST_V5, "MDC_ECG_AMPL_ST_V5", UnitMilliVolt, false, "ST-V5"},
	{MDC_ECG_AMPL_ST_V6, "MDC_ECG_AMPL_ST_V6", UnitMilliVolt, false, "ST-V6"},
}

// STFor returns the ST-amplitude code of an ECG lead (the IntelliVue and 11073 tables
// place MDC_ECG_AMPL_ST_x 512 terms above MDC_ECG_ELEC_POTL_x), or MDC_ECG_AMPL_ST for a
// code that is not one of the twelve leads.
func STFor(lead Code) Code {
	for _, l := range ECG12 {
		if l == lead {
			return lead + 512
		}
	}
	return MDC_ECG_AMPL_ST
}
