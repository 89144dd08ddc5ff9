#ifndef FLOWFOREST_CPCAP_SHIM_H
#define FLOWFOREST_CPCAP_SHIM_H
#include <pcap/pcap.h>
#include <stdio.h>
#endif
