public enum PcapCapturePlaceholder {}
