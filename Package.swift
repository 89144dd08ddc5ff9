// swift-tools-version:6.1
import PackageDescription

/// Settings every Swift target shares: Swift 6 language mode plus the two
/// upcoming features that keep APIs explicit about existentials and imports.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "flowforest",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "flowforest", targets: ["flowforest"]),
        // The lab (bench, demo, eval): installed beside the daemon, never linked into it.
        .executable(name: "flowforest-lab", targets: ["flowforest-lab"]),
        .library(name: "FlowForestCore", targets: ["FlowForestCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        // Store and server (FlowForestStore, FlowForestServer).
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/vapor/sqlite-kit.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-kit.git", from: "2.17.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // MARK: C modules. libbpf's and libpcap's headers both define
        // `struct bpf_insn`, so they live in separate modules that no Swift
        // file imports together.
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]
        ),
        .target(
            name: "CLibbpf",
            linkerSettings: [.linkedLibrary("bpf"), .linkedLibrary("elf"), .linkedLibrary("z")]
        ),
        // The eBPF object's bytes, embedded at build time from out/bpf (`make bpf`).
        .target(name: "CFlowForestBPF"),
        // glibc's heap: its counters (mallinfo2) for the memory-per-flow measurement,
        // and malloc_trim, with which the pipeline hands free pages back.
        .target(name: "CHeapStatistics"),

        // MARK: Pure core: records, flow table, features, detection.
        .target(
            name: "FlowForestCore",
            swiftSettings: swiftSettings
        ),

        // MARK: IPFIX export (RFC 7011, RFC 5103 biflows) to any collector.
        .target(
            name: "FlowForestIPFIX",
            dependencies: [
                "FlowForestCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: NetFlow v5/v9 and IPFIX collection: decoder, per-exporter flow tables, UDP source.
        .target(
            name: "FlowForestCollector",
            dependencies: [
                "FlowForestCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Detection: feature vectors, isolation forest, detector (pure Swift).
        .target(
            name: "FlowForestDetection",
            dependencies: ["FlowForestCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),

        // MARK: Pipeline: the one path from flow batches to scored anomalies and
        // to what is kept, behind a sink protocol (no HTTP, no SQL driver).
        .target(
            name: "FlowForestPipeline",
            dependencies: [
                "FlowForestCore", "FlowForestDetection", "CHeapStatistics",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Isolation-forest benchmark driven by Tests/parity/bench.py (`make bench-detection`).
        .executableTarget(
            name: "DetectionBench",
            dependencies: ["FlowForestDetection"],
            swiftSettings: swiftSettings
        ),

        // MARK: Capture sources; each yields core `FlowRecord`s.
        .target(
            name: "PcapCapture",
            dependencies: [
                "FlowForestCore", "CPcap",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "EBPFCapture",
            dependencies: [
                "FlowForestCore", "CLibbpf", "CFlowForestBPF",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Network namespace lab shared by lab tests and flowforest-lab.
        .target(
            name: "FlowForestLab",
            dependencies: ["FlowForestCore", "FlowForestIPFIX"],
            swiftSettings: swiftSettings
        ),

        // MARK: Storage: one SQL store over SQLite and PostgreSQL.
        .target(
            name: "FlowForestStore",
            dependencies: [
                "FlowForestCore",
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Service: HTTP API, server-sent events, dashboard, metrics, auth.
        .target(
            name: "FlowForestServer",
            dependencies: [
                "FlowForestCore", "FlowForestPipeline", "FlowForestStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                // A channel handler that bounds connections per client address.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // HMAC-SHA256 signatures of webhook bodies.
                .product(name: "Crypto", package: "swift-crypto"),
                // Alert posts: a deadline for the whole exchange, no redirects, no body read.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            resources: [.copy("Resources/openapi.yaml"), .copy("Dashboard")],
            swiftSettings: swiftSettings
        ),

        // MARK: The executable: commands and configuration; the work is in the libraries above.
        // No lab in it: `flowforest bench` and `demo` exec flowforest-lab.
        .executableTarget(
            name: "flowforest",
            dependencies: [
                "FlowForestCore", "FlowForestDetection", "FlowForestPipeline", "PcapCapture", "EBPFCapture",
                "FlowForestStore", "FlowForestServer", "FlowForestIPFIX", "FlowForestCollector",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: The lab executable: bench, demo and eval (`make bench`, `make demo`, `make eval`).
        .executableTarget(
            name: "flowforest-lab",
            dependencies: [
                "FlowForestCore", "FlowForestDetection", "FlowForestPipeline", "PcapCapture", "EBPFCapture", "FlowForestLab",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tests: one target per library target, plus root-only lab tests.
        .testTarget(
            name: "FlowForestCoreTests",
            dependencies: ["FlowForestCore", "FlowForestTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlowForestIPFIXTests",
            dependencies: [
                "FlowForestIPFIX", "FlowForestCore", "FlowForestTestSupport",
                .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlowForestCollectorTests",
            dependencies: [
                "FlowForestCollector", "FlowForestIPFIX", "FlowForestCore", "FlowForestTestSupport", "FlowForestLab",
                .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlowForestDetectionTests",
            // The pipeline's incident tracker groups the real detector's anomalies in AttackIncidentTests.
            dependencies: ["FlowForestDetection", "FlowForestCore", "FlowForestPipeline", "FlowForestTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlowForestPipelineTests",
            dependencies: [
                "FlowForestPipeline", "FlowForestDetection", "FlowForestCore", "FlowForestTestSupport",
                .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PcapCaptureTests",
            dependencies: ["PcapCapture", "FlowForestCore", "FlowForestTestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EBPFCaptureTests",
            dependencies: ["EBPFCapture", "FlowForestCore", "FlowForestLab", "FlowForestPipeline", "FlowForestTestSupport", "PcapCapture"],
            swiftSettings: swiftSettings
        ),
        // The drainer's bookkeeping without BPF: runs in the unit tier, no root.
        .testTarget(
            name: "EBPFCaptureUnitTests",
            dependencies: ["EBPFCapture", "FlowForestCore", "FlowForestDetection", "CHeapStatistics", "FlowForestTestSupport"],
            swiftSettings: swiftSettings
        ),
        // Test tooling shared by test targets: a throwaway PostgreSQL server, seeded fuzzing, flow collectors (nfcapd, nfacctd).
        .target(
            name: "FlowForestTestSupport",
            dependencies: ["FlowForestCore"],
            path: "Tests/FlowForestTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlowForestStoreTests",
            dependencies: ["FlowForestStore", "FlowForestCore", "FlowForestTestSupport",
                           .product(name: "MetricsTestKit", package: "swift-metrics")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlowForestServerTests",
            dependencies: [
                "FlowForestServer", "FlowForestStore", "FlowForestCore", "FlowForestTestSupport", "FlowForestDetection",
                "FlowForestPipeline", "PcapCapture", "FlowForestLab",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        // The lab's definitions that need no root: eval settings and scenarios.
        .testTarget(
            name: "FlowForestLabUnitTests",
            dependencies: ["FlowForestLab", "FlowForestCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "LabTests",
            dependencies: ["FlowForestLab", "FlowForestCore", "FlowForestDetection", "EBPFCapture", "FlowForestTestSupport", "flowforest", "flowforest-lab"],
            swiftSettings: swiftSettings
        ),
    ]
)
