package potok.compat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.InputStream;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.common.utils.internals.Exit;

/**
 * Runs Kafka's command-line tools from the resolved jars. The shell wrappers
 * ({@code kafka-topics.sh} ...) are not published to Maven; each only starts a JVM on one class,
 * so the checks call that class's {@code main}. Most tools run in this JVM, the way Kafka's own
 * tool tests run them: {@link Exit} is redirected so a tool's exit becomes a status code, and
 * stdin/stdout/stderr are swapped for buffers. The verifiable producer and consumer finish their
 * work in JVM shutdown hooks, so they run as child JVMs ({@link #runJvm}).
 */
final class Tools {
    private Tools() {
    }

    /** What a tool printed and the status it exited with (0 when main returned normally). */
    record Result(int status, String out, String err) {
        String both() {
            return "exit " + status + "\n--- stdout ---\n" + out + "--- stderr ---\n" + err;
        }

        Result expectOk(String what) {
            if (status != 0) {
                throw Checks.fail(what + " failed: " + both());
            }
            return this;
        }

        List<String> lines() {
            List<String> out = new ArrayList<>();
            for (String l : this.out.split("\n")) {
                if (!l.isBlank()) {
                    out.add(l);
                }
            }
            return out;
        }
    }

    private static final class ExitCalled extends RuntimeException {
        ExitCalled(int status) {
            super("exit " + status, null, false, false);
        }
    }

    /** Runs {@code mainClass.main(args)} in this JVM with {@code stdin} as its standard input. */
    static synchronized Result run(String mainClass, String stdin, String... args) throws Exception {
        PrintStream oldOut = System.out;
        PrintStream oldErr = System.err;
        InputStream oldIn = System.in;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        // The first exit is the tool's outcome: a real JVM would end there. Some tools call exit
        // inside a try block that turns any throwable into status 1, so it is recorded before
        // the exception that stands in for the exit unwinds.
        Integer[] firstExit = {null};
        Exit.Procedure exit = (code, message) -> {
            if (firstExit[0] == null) {
                firstExit[0] = code;
            }
            throw new ExitCalled(code);
        };
        Exit.setExitProcedure(exit);
        Exit.setHaltProcedure(exit);
        int status = 0;
        // A tool's shutdown hook closes what main already closed when it returned; in this shared
        // JVM it would only run (late, against a finished check) at exit.
        Exit.setShutdownHookAdder((name, hook) -> {
        });
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            System.setIn(new ByteArrayInputStream((stdin == null ? "" : stdin).getBytes(StandardCharsets.UTF_8)));
            Method main = Class.forName(mainClass).getMethod("main", String[].class);
            try {
                main.invoke(null, (Object) args);
            } catch (InvocationTargetException e) {
                if (!(e.getCause() instanceof ExitCalled)) {
                    status = -1;
                    e.getCause().printStackTrace(System.err);
                }
            }
            if (firstExit[0] != null) {
                status = firstExit[0];
            }
        } finally {
            System.out.flush();
            System.err.flush();
            System.setOut(oldOut);
            System.setErr(oldErr);
            System.setIn(oldIn);
            Exit.resetExitProcedure();
            Exit.resetHaltProcedure();
            Exit.resetShutdownHookAdder();
        }
        return new Result(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    /** Runs {@code mainClass} in a child JVM on this JVM's classpath; killed after {@code timeoutS}. */
    static Result runJvm(long timeoutS, String mainClass, String... args) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(System.getProperty("java.home") + File.separator + "bin" + File.separator + "java");
        cmd.add("-Xmx256m");
        cmd.add("-XX:TieredStopAtLevel=1");
        String log4j = System.getProperty("log4j2.configurationFile");
        if (log4j != null) {
            cmd.add("-Dlog4j2.configurationFile=" + log4j);
        }
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(mainClass);
        cmd.addAll(List.of(args));
        File out = File.createTempFile("tool", ".out");
        File err = File.createTempFile("tool", ".err");
        try {
            Process p = new ProcessBuilder(cmd).redirectOutput(out).redirectError(err)
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
            int status;
            if (p.waitFor(timeoutS, TimeUnit.SECONDS)) {
                status = p.exitValue();
            } else {
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                status = -9;
            }
            return new Result(status, Files.readString(out.toPath()), Files.readString(err.toPath()));
        } finally {
            out.delete();
            err.delete();
        }
    }
}
