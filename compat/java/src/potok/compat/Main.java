package potok.compat;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Entry point of the Java compatibility checks (issue 16): one JVM runs every check of the named
 * suites against one broker and prints one line per check.
 *
 * <pre>
 * java -cp CLASSES:KAFKA_CLASSPATH potok.compat.Main --bootstrap HOST:PORT --target potok|kafka
 *      --suites clients,groups,admin,tools,streams [--filter SUBSTRING]
 * </pre>
 *
 * {@code --target} names the broker under test, for the few checks whose expected outcome differs
 * on purpose (each such difference is documented in docs/compatibility.md). The program exits 0
 * when every check ran (passing or not: the caller judges the lines), 2 on a usage error.
 */
public final class Main {
    private Main() {
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = null;
        String target = null;
        List<String> suites = new ArrayList<>();
        String filter = null;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--bootstrap" -> bootstrap = args[i + 1];
                case "--target" -> target = args[i + 1];
                case "--suites" -> suites.addAll(Arrays.asList(args[i + 1].split(",")));
                case "--filter" -> filter = args[i + 1];
                default -> usage("unknown option " + args[i]);
            }
        }
        if (bootstrap == null || target == null || suites.isEmpty()) {
            usage("--bootstrap, --target and --suites are required");
        }
        if (!target.equals("potok") && !target.equals("kafka")) {
            usage("--target must be potok or kafka");
        }
        Ctx ctx = new Ctx(bootstrap, target.equals("kafka"));
        Checks checks = new Checks(filter);
        for (String suite : suites) {
            switch (suite) {
                case "clients" -> ClientChecks.run(ctx, checks);
                case "groups" -> GroupChecks.run(ctx, checks);
                case "admin" -> AdminChecks.run(ctx, checks);
                case "tools" -> ToolChecks.run(ctx, checks);
                case "streams" -> StreamsChecks.run(ctx, checks);
                default -> usage("unknown suite " + suite);
            }
        }
        System.out.println("java checks: " + (checks.passed + checks.failed) + " run, " + checks.failed + " failed");
        System.out.flush();
        // Client threads of a timed-out check may still be alive; they must not keep the JVM up.
        System.exit(0);
    }

    private static void usage(String why) {
        System.err.println("usage error: " + why);
        System.exit(2);
    }
}
