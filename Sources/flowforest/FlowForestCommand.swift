import ArgumentParser

@main
struct FlowForestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flowforest",
        abstract: "A network anomaly sensor: eBPF flow capture, isolation-forest detection, live dashboard.",
        discussion: """
            Examples:
              sudo flowforest run --interface eth0      capture, detect and serve on 127.0.0.1:8080
              flowforest analyze traffic.pcap           flows (and anomalies) of a capture file
            """,
        subcommands: [
            RunCommand.self,
            AnalyzeCommand.self,
            TrainCommand.self,
            BenchCommand.self,
            DemoCommand.self,
            UserCommand.self,
            TokenCommand.self,
        ]
    )
}
