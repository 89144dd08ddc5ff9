import FlowForestCore
import Testing

@Suite("Observation point names")
struct InterfaceNameTests {
    static func record(_ name: String?, interfaceIndex: UInt32 = 0) -> FlowRecord {
        FlowRecord(id: 1, sourceAddress: IPAddress("198.18.0.1")!, destinationAddress: IPAddress("198.18.0.2")!,
                   sourcePort: 1, destinationPort: 2, ipProtocol: IPProtocol.udp, interfaceIndex: interfaceIndex,
                   interfaceName: name)
    }

    @Test("local interfaces and exporters read back as they were named, an exporter's interface index included",
          arguments: ["eth0", "veth-sensor-a", "nflog:5", "198.18.9.1", "198.18.9.1%3", "2001:db8::1%4294967295", "ä-port"])
    func roundTrip(name: String) {
        #expect(Self.record(name).interfaceName == name)
    }

    @Test("an exporter's name takes its index from the record; a local name keeps the record's index")
    func indices() {
        var r = Self.record(nil, interfaceIndex: 7)
        #expect(r.interfaceName == nil && r.interface.isNone)
        r.interface = InterfaceName(exporter: IPAddress("198.18.9.1")!)
        #expect(r.interfaceName == "198.18.9.1%7")
        r.interfaceName = "198.18.9.2%3"
        #expect(r.interfaceIndex == 3 && r.interface.exporter == IPAddress("198.18.9.2"))
        r.interfaceName = "eth1"
        #expect(r.interfaceIndex == 3 && r.interface.exporter == nil && r.interfaceName == "eth1")
        r.interfaceName = ""
        #expect(r.interface.isNone)
    }

    @Test("a local name past the inline capacity is cut at a character boundary")
    func longNames() {
        let ascii = String(repeating: "x", count: 40)
        #expect(InterfaceName(local: ascii).name(interfaceIndex: 0) == String(repeating: "x", count: InterfaceName.localCapacity))
        // 29 ASCII bytes, then a two-byte character that would straddle the cut.
        let straddling = String(repeating: "y", count: 29) + "é" + "z"
        #expect(InterfaceName(local: straddling).name(interfaceIndex: 0) == String(repeating: "y", count: 29))
        // A two-byte character that ends exactly at the cut stays whole.
        let fitting = String(repeating: "w", count: 28) + "é" + "zz"
        #expect(InterfaceName(local: fitting).name(interfaceIndex: 0) == String(repeating: "w", count: 28) + "é")
    }

    @Test("a flow record is plain bytes: copying one retains nothing")
    func recordIsPlainBytes() {
        #expect(_isPOD(FlowRecord.self))
        #expect(MemoryLayout<InterfaceName>.size == 32)
    }
}
